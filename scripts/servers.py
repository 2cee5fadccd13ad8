"""Start real servers on loopback: Label Studio 1.23 (headless), this backend, a Chroma server.

Used by the demo and the e2e tests. Label Studio's admin user and a legacy API token
are created at first start from the environment; the token is kept in
<data-dir>/api_token so later runs reuse it.

    python -m scripts.servers --data-dir .demo/label-studio --port 8080   # Label Studio alone
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
LABEL_STUDIO_BIN = ROOT / ".venv-ls" / "bin" / "label-studio"
BACKEND_PYTHON = ROOT / ".venv" / "bin" / "python"
CHROMA_BIN = ROOT / ".venv" / "bin" / "chroma"
ADMIN_EMAIL = "admin@example.com"
PREDICTION_IMPORT_FLAG = "fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short"


@dataclass
class LabelStudioServer:
    """A Label Studio process and how to reach it."""

    data_dir: Path
    port: int
    local_files_root: Path
    api_token: str = ""
    password: str = ""
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 240.0, log_path: Path | None = None) -> "LabelStudioServer":
        """Start the server and wait for /health (first start runs migrations: ~40-60 s)."""
        if not LABEL_STUDIO_BIN.exists():
            raise RuntimeError(f"{LABEL_STUDIO_BIN} not found: run scripts/setup_env.sh first")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.local_files_root.mkdir(parents=True, exist_ok=True)
        self.api_token = self.api_token or stored_secret(self.data_dir / "api_token", lambda: secrets.token_hex(20))
        self.password = self.password or stored_secret(self.data_dir / "admin_password", lambda: secrets.token_urlsafe(12))
        env = {
            **os.environ,
            "LABEL_STUDIO_USERNAME": ADMIN_EMAIL,
            "LABEL_STUDIO_PASSWORD": self.password,
            "LABEL_STUDIO_USER_TOKEN": self.api_token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "LOCAL_FILES_SERVING_ENABLED": "true",
            "LOCAL_FILES_DOCUMENT_ROOT": str(self.local_files_root.resolve()),
            # The defaults block an ML backend and webhooks on loopback.
            "ML_BLOCK_LOCAL_IP": "false",
            "SSRF_PROTECTION_ENABLED": "false",
            # Label Studio 1.23's default prediction import recounts every task of the project
            # after each call (15 s per call at 10k tasks, measured); this flag of its own makes
            # it count only the tasks imported. See benchmarks/results/performance.md.
            PREDICTION_IMPORT_FLAG: "true",
            "COLLECT_ANALYTICS": "false",
            "LATEST_VERSION_CHECK": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
        }
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [str(LABEL_STUDIO_BIN), "start", "--no-browser", "--internal-host", "127.0.0.1",
             "--port", str(self.port), "--data-dir", str(self.data_dir.resolve())],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        _wait_healthy(self.process, self.url, timeout_s, "Label Studio")
        return self

    def stop(self) -> None:
        _stop_group(self.process, grace_s=20)


@dataclass
class BackendServer:
    """This backend as a real process (waitress), so tests can kill -9 and restart it."""

    port: int
    env: dict[str, str]
    log_path: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120.0) -> "BackendServer":
        env = {**os.environ, **self.env, "PORT": str(self.port), "HOST": "127.0.0.1", "PYTHONPATH": str(ROOT)}
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [str(BACKEND_PYTHON), "-m", "ml_backend.service"], cwd=ROOT, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        _wait_healthy(self.process, self.url, timeout_s, f"backend (log: {self.log_path})")
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup runs, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        _stop_group(self.process, grace_s=30)


def _wait_healthy(process: subprocess.Popen, url: str, timeout_s: float, name: str) -> None:
    """Poll url/health until it answers 200; fail early if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{name} not ready on {url} after {timeout_s:.0f} s")


def _stop_group(process: subprocess.Popen | None, grace_s: float) -> None:
    """SIGTERM the process group (servers spawn children), SIGKILL it after `grace_s`."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@dataclass
class ChromaServer:
    """A Chroma server (`chroma run`) on loopback: the client/server mode (CHROMA_HOST/CHROMA_PORT)."""

    path: Path
    port: int
    process: subprocess.Popen | None = field(default=None, repr=False)

    host = "127.0.0.1"

    def start(self, timeout_s: float = 60.0, log_path: Path | None = None) -> "ChromaServer":
        import chromadb

        if not CHROMA_BIN.exists():
            raise RuntimeError(f"{CHROMA_BIN} not found: run scripts/setup_env.sh first")
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [str(CHROMA_BIN), "run", "--path", str(self.path), "--host", self.host, "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chroma run exited with code {self.process.returncode}")
            try:
                chromadb.HttpClient(host=self.host, port=self.port).heartbeat()
                return self
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"Chroma server not ready on {self.host}:{self.port} after {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stored_secret(path: Path, make) -> str:
    """The secret kept in `path` (mode 0600), made with `make()` and written there the first time."""
    if path.exists():
        return path.read_text().strip()
    value = make()
    path.write_text(value)
    path.chmod(0o600)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description="Run Label Studio headless on loopback until Ctrl-C.")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".demo" / "label-studio")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--local-files-root", type=Path, default=ROOT / ".demo" / "files")
    args = parser.parse_args()
    server = LabelStudioServer(args.data_dir, args.port, args.local_files_root).start()
    print(f"Label Studio on {server.url}  user {ADMIN_EMAIL}  password in {args.data_dir}/admin_password", flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        server.stop()
    sys.exit(server.process.returncode or 0)


if __name__ == "__main__":
    main()
