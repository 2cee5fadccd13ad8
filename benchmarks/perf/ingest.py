"""Ingest: images/s end to end against the raw CLIP forward pass, full-size ViT-B/32.

End to end is `ActiveLoop.embed_pending`, the worker's ingest step: read each task's
image from local-files storage (the `TaskImageLoader` path), decode, preprocess, CLIP
forward in batches (`Embedder.embed_sources`, which prefetches ahead of the
forward pass), upsert into Chroma, mark the tasks embedded in the ledger.

Raw forward is `ImageEmbedder.forward` on an already-preprocessed batch of the
same size. The model is `CLIPConfig()` (ViT-B/32, 512-d) with random weights: the
real model's compute, no download. The images are 640x480 JPEGs (~60-90 KB), the size
of a typical photo dataset image. Raw and end-to-end runs alternate, so both see the
same machine load, and the ratio is taken between their medians.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import chromadb
import numpy as np
import torch
from PIL import Image

MODEL_ID_SUFFIX = "vit-b-32-random"


@dataclass
class IngestSettings:
    images: int = 192
    batch_size: int = 32
    repeats: int = 3
    fetch_workers: int | None = None  # None: the service's default (settings.fetch_workers)
    also_workers: tuple[int, ...] = (1,)  # compared side by side with the default (CPU contention on few cores)


def build_random_vit_b32(folder: Path) -> Path:
    """Save a ViT-B/32 CLIP with random weights and the standard CLIP image processor."""
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    torch.manual_seed(0)
    CLIPModel(CLIPConfig()).eval().save_pretrained(folder)
    CLIPImageProcessorPil().save_pretrained(folder)
    return folder


def write_photos(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """640x480 JPEGs with smooth structure plus grain, so they compress like photos."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)).resize((640, 480), Image.BICUBIC)
        pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-12, 13, size=(480, 640, 3), dtype=np.int16)
        path = folder / f"photo-{i:05d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def ingest_rate(run: Path, embedder, loader, tasks: list[tuple[int, dict]], fetch_workers: int) -> float:
    """Tasks/s of `ActiveLoop.embed_pending` over `tasks` into a fresh ledger and Chroma store under `run`."""
    from ml_backend.core.facts import Facts
    from ml_backend.core.ledger import Ledger
    from ml_backend.core.loop import ActiveLoop
    from ml_backend.core.params import ProjectParams
    from ml_backend.core.store import VectorStore

    ledger = Ledger(run / "ledger.sqlite")
    try:
        facts = Facts(ledger)
        facts.set_params(1, {})
        store = VectorStore(chromadb.PersistentClient(path=str(run / "chroma")), "project-1", embedder.model_id)
        loop = ActiveLoop(1, ProjectParams.parse({}), ledger, store, embedder, loader, fetch_workers=fetch_workers)
        facts.add_tasks(1, tasks)
        start = time.perf_counter()
        report = loop.embed_pending(limit=len(tasks))
        elapsed = time.perf_counter() - start
        assert len(report.embedded) == len(tasks), report.failed
        return len(report.embedded) / elapsed
    finally:
        ledger.close()


def measure(settings: IngestSettings, workdir: str) -> dict:
    from ml_backend.adapters.ls_media import TaskImageLoader
    from ml_backend.core.embed import ImageEmbedder
    from ml_backend.core.fetch import FetchPolicy, ImageFetcher
    from ml_backend.service.settings import ServiceSettings

    root = Path(tempfile.mkdtemp(dir=workdir))
    try:
        model = build_random_vit_b32(root / "vit-b-32")
        files = root / "files"
        paths = write_photos(files / "photos", settings.images)
        workers = settings.fetch_workers or ServiceSettings.model_fields["fetch_workers"].default
        embedder = ImageEmbedder(str(model), batch_size=settings.batch_size)
        loader = TaskImageLoader("image", "http://127.0.0.1:1", ImageFetcher(FetchPolicy()), local_files_root=str(files))
        tasks = [(i + 1, {"image": f"/data/local-files/?d=photos/{p.name}"}) for i, p in enumerate(paths)]
        pixels = embedder.collate([embedder.prepare(loader(data)) for _, data in tasks[: settings.batch_size]])
        embedder.forward(pixels)  # warm-up: first call allocates

        variants = [workers] + [w for w in settings.also_workers if w != workers]
        raw_rates: list[float] = []
        e2e_rates: dict[int, list[float]] = {w: [] for w in variants}
        for repeat in range(settings.repeats):
            batches = max(1, settings.images // settings.batch_size)  # the same images as one end-to-end run
            start = time.perf_counter()
            for _ in range(batches):
                embedder.forward(pixels)
            raw_rates.append(batches * settings.batch_size / (time.perf_counter() - start))
            for fetch_workers in variants:
                e2e_rates[fetch_workers].append(
                    ingest_rate(root / f"run-{repeat}-{fetch_workers}", embedder, loader, tasks, fetch_workers))
        raw, e2e = float(np.median(raw_rates)), float(np.median(e2e_rates[workers]))
        return {
            "end_to_end_per_s": e2e, "raw_forward_per_s": raw, "ratio": e2e / raw,
            "end_to_end_runs_per_s": e2e_rates[workers], "raw_forward_runs_per_s": raw_rates,
            "fetch_worker_variants": [{"fetch_workers": w, "end_to_end_per_s": float(np.median(e2e_rates[w])),
                                       "ratio": float(np.median(e2e_rates[w])) / raw} for w in variants],
            "images": settings.images, "batch_size": settings.batch_size, "fetch_workers": workers,
            "image_size": "640x480 JPEG", "jpeg_kb_mean": round(float(np.mean([p.stat().st_size for p in paths])) / 1024, 1),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
