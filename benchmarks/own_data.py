"""Your own labeled data for the benchmarks: one .npz file of embeddings, classes and prompts.

The label-efficiency benchmark runs its protocol on built-in concepts. To see what the loop
saves on yours (another modality, another embedding model, other concepts), embed a labeled
folder once and point the benchmark at the file::

    python -m benchmarks.own_data --folder photos/ --modality image \\
        --model openai/clip-vit-base-patch32 --prompt "a photo of a {}" --out photos.npz
    python -m benchmarks.label_efficiency --dataset photos.npz --workers 2

`photos/` holds one subfolder per class (its name is the class name) of images, or of `.txt`
files for `--modality text`. Items are embedded with the backend's own embedders (the model
a project would use), a seeded quarter of every class becomes the test split, and, with
`--prompt` and a model that embeds text, each class gets the prompt "a photo of a <class>"
for the benchmark's prompt start. Any other tool can write the file instead:

- `X_pool` (n, d), `X_test` (m, d): float embeddings (rows are L2-normalised on loading);
- `y_pool` (n,), `y_test` (m,): integer class of every item, 0..K-1;
- `class_names` (K,): str;
- optional `prompts` (K,) str ("" for a class without one) with `prompt_vectors` (K, d), the
  prompts embedded in the same space as the items;
- optional `modality` and `model` (str): what made the file, for whoever reads it (the
  benchmarks do not use them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from benchmarks.datasets import EmbeddedDataset

REQUIRED = ("X_pool", "y_pool", "X_test", "y_test", "class_names")
TEST_SHARE = 0.25
SPLIT_SEED = 0
TEXT_SUFFIXES = (".txt",)


class DatasetFileError(ValueError):
    """The file is not a dataset this benchmark can run on; the message says what is wrong."""


def load(path: str | Path) -> EmbeddedDataset:
    """The dataset in `path`, checked and with unit rows; DatasetFileError says what is wrong."""
    return read(path)[0]


def read(path: str | Path) -> tuple[EmbeddedDataset, dict[int, str]]:
    """`load`, and class index -> its prompt for the classes that have one."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetFileError(f"{path}: not a readable .npz file ({exc})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a lone .npy array
        raise DatasetFileError(f"{path}: one array, not an .npz file of named arrays ({', '.join(REQUIRED)})")
    try:
        with loaded as file:
            arrays = {key: file[key] for key in file.files}
    except (OSError, ValueError) as exc:  # e.g. an object array, which would need pickle
        raise DatasetFileError(f"{path}: not a readable .npz file ({exc})") from None
    missing = [key for key in REQUIRED if key not in arrays]
    if missing:
        raise DatasetFileError(f"{path}: missing {', '.join(missing)} (a dataset file holds {', '.join(REQUIRED)})")
    names = tuple(str(n) for n in np.atleast_1d(arrays["class_names"]))
    X_pool = _embeddings(path, "X_pool", arrays["X_pool"])
    X_test = _embeddings(path, "X_test", arrays["X_test"], X_pool.shape[1])
    y_pool = _classes(path, "y_pool", arrays["y_pool"], len(X_pool), len(names))
    y_test = _classes(path, "y_test", arrays["y_test"], len(X_test), len(names))
    prompts, class_prompts = {}, {}
    if "prompts" in arrays or "prompt_vectors" in arrays:
        texts = [str(t) for t in np.atleast_1d(arrays.get("prompts", np.array([])))]
        vectors = arrays.get("prompt_vectors")
        if vectors is None or len(texts) != len(names) or np.shape(vectors) != (len(names), X_pool.shape[1]):
            raise DatasetFileError(f"{path}: prompts and prompt_vectors must come together, one per class "
                                   f"({len(names)}), the vectors of the items' dimension ({X_pool.shape[1]})")
        vectors = _embeddings(path, "prompt_vectors", vectors, X_pool.shape[1])
        prompts = {text: vector for text, vector in zip(texts, vectors) if text}
        class_prompts = {k: text for k, text in enumerate(texts) if text}

    def prompt_vectors(texts: Sequence[str]) -> np.ndarray:
        unknown = [t for t in texts if t not in prompts]
        if unknown:
            raise DatasetFileError(f"{path}: no embedded prompt {unknown[0]!r}")
        return np.stack([prompts[t] for t in texts])

    return EmbeddedDataset(str(path), X_pool, y_pool, X_test, y_test, names,
                           prompt_embedder=prompt_vectors if prompts else None), class_prompts


def _embeddings(path, key: str, values: np.ndarray, dim: int | None = None) -> np.ndarray:
    if values.ndim != 2 or not len(values) or values.dtype.kind not in "fiu":
        raise DatasetFileError(f"{path}: {key} must be a non-empty 2-D array of real numbers, got {values.dtype} "
                               f"{values.shape}")
    if dim is not None and values.shape[1] != dim:
        raise DatasetFileError(f"{path}: {key} has {values.shape[1]} dimensions, X_pool {dim}")
    values = values.astype(np.float64)
    with np.errstate(over="ignore"):  # a norm too large for float64 is refused below
        norms = np.linalg.norm(values, axis=1, keepdims=True) if np.all(np.isfinite(values)) else np.zeros(1)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise DatasetFileError(f"{path}: {key} holds a row that is not finite, too large or all zeros")
    return (values / norms).astype(np.float32)


def _classes(path, key: str, values: np.ndarray, rows: int, classes: int) -> np.ndarray:
    if values.shape != (rows,) or not np.issubdtype(values.dtype, np.integer):
        raise DatasetFileError(f"{path}: {key} must be {rows} integer classes, got {values.dtype} {values.shape}")
    if len(values) and (values.min() < 0 or values.max() >= classes):
        raise DatasetFileError(f"{path}: {key} holds a class outside 0..{classes - 1} (class_names has {classes})")
    return values.astype(np.int64)


# ---------------------------------------------------------------- writing one from a labeled folder

def read_folder(folder: Path, modality: str) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Every item file under folder/<class>/ (sorted), its class index, and the class names."""
    classes = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if len(classes) < 2:
        raise DatasetFileError(f"{folder}: needs one subfolder per class, at least two; found {list(classes)}")
    files, labels = [], []
    for k, name in enumerate(classes):
        items = sorted(p for p in (folder / name).iterdir() if p.is_file() and not p.name.startswith("."))
        if modality == "text":
            items = [p for p in items if p.suffix.lower() in TEXT_SUFFIXES]
        files += items
        labels += [k] * len(items)
    return files, np.array(labels, dtype=np.int64), classes


def split_test_rows(labels: np.ndarray, share: float = TEST_SHARE, seed: int = SPLIT_SEED) -> np.ndarray:
    """(n,) bool: a seeded `share` of every class (rounded; at least one item left in the pool)."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for k in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == k))
        test[rows[: min(int(round(share * len(rows))), len(rows) - 1)]] = True
    return test


def embed_folder(folder: Path, modality: str, model: str, prompt: str | None, out: Path,
                 chunk: int = 256, log=print) -> dict:
    """Embed folder/<class>/* with the backend's embedder for `model` and write the dataset file.

    Files that do not read as an item of `modality` are left out and counted."""
    from ml_backend.core.embedding import load_embedder

    files, labels, classes = read_folder(folder, modality)
    if not files:
        raise DatasetFileError(f"{folder}: its class subfolders hold no {modality} files")
    embedder = load_embedder(modality, model)
    if prompt and not embedder.can_embed_text:
        raise DatasetFileError(f"{embedder.prompt_unsupported_reason}; leave out --prompt and the benchmark "
                               "starts from an example")
    vectors, kept, skipped = [], [], []
    for start in range(0, len(files), chunk):
        items = []
        for row in range(start, min(start + chunk, len(files))):
            try:
                items.append(_read_item(files[row], modality))
                kept.append(row)
            except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
                skipped.append(f"{files[row]}: {exc}")
        vectors.append(np.asarray(embedder.embed_items(items), dtype=np.float32))
        log(f"  embedded {min(start + chunk, len(files))}/{len(files)}")
    if not kept:
        raise DatasetFileError(f"{folder}: no file read as {modality}; the first: {skipped[0]}")
    vectors, labels = np.concatenate(vectors), labels[kept]
    test = split_test_rows(labels)
    arrays = {"X_pool": vectors[~test], "y_pool": labels[~test], "X_test": vectors[test], "y_test": labels[test],
              "class_names": np.array(classes), "modality": np.array(modality), "model": np.array(model)}
    if prompt:
        texts = [prompt.replace("{}", name) for name in classes]  # not str.format: other braces stay as typed
        arrays.update(prompts=np.array(texts), prompt_vectors=np.asarray(embedder.embed_texts(texts), np.float32))
    np.savez_compressed(out, **arrays)
    return {"items": len(kept), "pool": int((~test).sum()), "test": int(test.sum()), "classes": classes,
            "skipped": skipped}


def _read_item(path: Path, modality: str):
    if modality == "text":
        return path.read_text(encoding="utf-8", errors="replace")
    from PIL import Image

    with Image.open(path) as image:
        return image.convert("RGB")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", required=True, type=Path, help="one subfolder per class, named after it")
    parser.add_argument("--modality", choices=("image", "text"), default="image")
    parser.add_argument("--model", required=True, help="the embedding model, as a project would configure it")
    parser.add_argument("--prompt", default=None,
                        help='a prompt per class, "{}" standing for its name (e.g. "a photo of a {}")')
    parser.add_argument("--out", required=True, type=Path, help="the .npz file to write")
    args = parser.parse_args(argv)
    from ml_backend.core.errors import ModelUnavailableError

    try:
        written = embed_folder(args.folder, args.modality, args.model, args.prompt, args.out)
    except (DatasetFileError, ModelUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {written['items']} items ({written['pool']} pool, {written['test']} test), "
          f"classes {', '.join(written['classes'])}")
    if written["skipped"]:
        print(f"left out {len(written['skipped'])} unreadable files, the first: {written['skipped'][0]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
