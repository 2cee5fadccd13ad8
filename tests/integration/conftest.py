"""Chroma in both modes the service supports, selected the way the service selects them.

`open_chroma(path=...)` gives the embedded store (the default); `open_chroma(host=, port=)`
a client of `chroma run` on loopback (CHROMA_HOST/CHROMA_PORT). Tests that take the
`chroma_mode` fixture run once per mode. CHROMA_TEST_MODES=embedded (or =server)
narrows the run to one mode.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest

from ml_backend.core.store import open_chroma
from scripts.servers import CHROMA_BIN, ChromaServer, free_port

MODES = tuple(m.strip() for m in os.environ.get("CHROMA_TEST_MODES", "embedded,server").split(",") if m.strip())


@dataclass(frozen=True)
class ChromaMode:
    """How to reach Chroma in one mode, as the service's settings would say it."""

    name: str
    path: str | None = None
    host: str | None = None
    port: int = 8000

    def client(self):
        if self.path is not None:
            from tests.conftest import fresh_chroma

            return fresh_chroma(self.path)  # a client that really re-reads the folder
        return open_chroma(host=self.host, port=self.port)

    def settings(self) -> dict:
        """ServiceSettings fields for this mode (MODEL_DIR gives the embedded path)."""
        return {"chroma_host": self.host, "chroma_port": self.port} if self.host else {}


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    if not CHROMA_BIN.exists():
        pytest.skip("the chroma CLI is not installed in .venv")
    root = tmp_path_factory.mktemp("chroma-server")
    server = ChromaServer(root / "data", free_port()).start(log_path=root / "chroma.log")
    yield server
    server.stop()


@pytest.fixture(params=MODES)
def chroma_mode(request, tmp_path) -> ChromaMode:
    if request.param == "embedded":
        return ChromaMode("embedded", path=str(tmp_path / "chroma"))
    server = request.getfixturevalue("chroma_server")
    return ChromaMode("server", host=server.host, port=server.port)


@pytest.fixture
def collection_name() -> str:
    """A fresh collection name: tests in server mode share one server."""
    return f"test-{uuid.uuid4().hex[:12]}"
