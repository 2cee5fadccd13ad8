"""The loop's and the worker's unit tests again, on the real components the service runs:
embedded Chroma on disk and the tiny random CLIP, where the unit layer uses in-memory fakes
(`tests/fakes.py`). Same tests, same assertions; only the fixtures below differ."""

from __future__ import annotations

import pytest

from tests.conftest import fresh_chroma
from tests.unit.test_loop import *  # noqa: F401,F403 - every test of the loop
from tests.unit.test_worker import *  # noqa: F401,F403 - every test of the worker


@pytest.fixture
def loop_embedder(embedder):
    return embedder


@pytest.fixture
def open_chroma(tmp_path):
    return lambda: fresh_chroma(tmp_path / "chroma")


@pytest.fixture
def worker_embedder(embedder):
    return embedder


@pytest.fixture
def worker_chroma(tmp_path):
    return fresh_chroma(tmp_path / "model" / "chroma")
