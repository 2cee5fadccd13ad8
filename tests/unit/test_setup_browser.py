"""scripts/setup_browser.sh: installs Chromium for the browser tests where missing, or says clearly why it cannot."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "setup_browser.sh"


def fake_apt_get(folder: Path, exit_code: int) -> Path:
    """An apt-get that records each call and exits with `exit_code` (no package is touched)."""
    folder.mkdir()
    log = folder / "calls"
    tool = folder / "apt-get"
    tool.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexit {exit_code}\n')
    tool.chmod(0o755)
    return log


def run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "APT_GET": str(tmp_path / "bin" / "apt-get"), **env}
    return subprocess.run(["bash", str(SCRIPT)], env=environ, capture_output=True, text=True, timeout=60)


def fake_browser(folder: Path, name: str) -> str:
    path = folder / name
    path.write_text("#!/bin/sh\necho 'Chromium 1.0'\n")
    path.chmod(0o755)
    return str(path)


def test_nothing_is_installed_when_chromium_and_its_driver_work(tmp_path):
    calls = fake_apt_get(tmp_path / "bin", exit_code=0)
    result = run(tmp_path, CHROMIUM_BIN=fake_browser(tmp_path, "chromium"), CHROMEDRIVER_BIN=fake_browser(tmp_path, "driver"))
    assert result.returncode == 0, result.stderr
    assert not calls.exists()


def test_when_apt_get_cannot_install_it_fails_saying_what_to_do(tmp_path):
    calls = fake_apt_get(tmp_path / "bin", exit_code=100)
    result = run(tmp_path, CHROMIUM_BIN=str(tmp_path / "no-chromium"), CHROMEDRIVER_BIN=str(tmp_path / "no-driver"))
    assert result.returncode == 1
    assert "update -qq" in calls.read_text()
    assert "could not be installed" in result.stderr and "apt-get install chromium chromium-driver" in result.stderr
    assert "CHROMIUM_BIN" in result.stderr
