"""Helpers shared by the performance sections: timing statistics, machine info, test data."""

from __future__ import annotations

import os
import platform
import time
from contextlib import contextmanager
from importlib import metadata
from typing import Iterator

import numpy as np


def percentile_ms(seconds: list[float], q: float) -> float:
    """The q-th percentile (0-100) of durations given in seconds, in milliseconds."""
    return float(np.percentile(np.asarray(seconds) * 1000.0, q)) if seconds else float("nan")


def median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


@contextmanager
def stopwatch() -> Iterator[list[float]]:
    """`with stopwatch() as t: ...` then t[0] holds the elapsed seconds."""
    elapsed: list[float] = []
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed.append(time.perf_counter() - start)


def rss_bytes() -> int:
    """Resident set size of this process (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def machine_info() -> dict:
    """What the numbers were measured on: they mean little without it."""
    import torch

    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    versions = {}
    for package in ("torch", "transformers", "chromadb", "numpy", "pillow", "label-studio-sdk"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    load = os.getloadavg() if hasattr(os, "getloadavg") else (None, None, None)
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load] if load[0] is not None else None,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "versions": versions,
    }


def clustered_unit_vectors(n: int, dim: int = 512, clusters: int = 200, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """`n` unit-norm float32 vectors shaped like CLIP image embeddings.

    CLIP embeddings share a strong common direction (two random images have cosine
    around 0.5) and fall into semantic clusters of unequal size. Each row is the common
    direction + its cluster's centre + isotropic noise, normalised. Generated in
    chunks so 1M x 512 needs no float64 temporaries of full size.
    """
    rng = np.random.default_rng(seed)
    common = _unit(rng.standard_normal(dim))
    centres = _unit(rng.standard_normal((clusters, dim))).astype(np.float32)
    sizes = rng.dirichlet(np.full(clusters, 0.5))  # unequal cluster sizes, as in real data
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        labels = rng.choice(clusters, size=m, p=sizes)
        block = 0.7 * common[None, :].astype(np.float32) + 0.6 * centres[labels]
        block += rng.standard_normal((m, dim), dtype=np.float32) * np.float32(0.6 / np.sqrt(dim))
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def query_vectors(data_seed: int, count: int, dim: int = 512, clusters: int = 200, spread: float = 0.3, seed: int = 1) -> np.ndarray:
    """Head weight vectors W near one cluster of `clustered_unit_vectors(seed=data_seed)`.

    A head trained on ratings points at what annotators mark relevant: a cluster holding
    about 2% of the pool, plus the noise of few ratings. Successive heads are close to
    each other (cosine ~0.9), as in a labelling session.
    """
    rng_data = np.random.default_rng(data_seed)  # the same draws, in the same order, as the data
    common = _unit(rng_data.standard_normal(dim))
    centres = _unit(rng_data.standard_normal((clusters, dim)))
    sizes = rng_data.dirichlet(np.full(clusters, 0.5))
    target = centres[int(np.argmin(np.abs(sizes - 0.02)))]
    rng = np.random.default_rng(seed)
    base = 0.3 * common + target
    return _unit(base[None, :] + spread * _unit(rng.standard_normal((count, dim)))).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)
