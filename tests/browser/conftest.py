"""Fixtures for tests in a real browser against the real Label Studio and backend the e2e fixtures start.

- `browser`: a fresh headless Chromium per test (tests/browser/harness.py). When the
  test fails, its screenshot, browser console and page source are saved under
  test-artifacts/browser/<test name>/ (BROWSER_ARTIFACTS_DIR overrides the folder).
- `logged_in`: the same, logged into Label Studio as its admin through the login form.
- `start_backend`, `tiny_clip_path`, `label_studio`: the e2e layer's real processes.
- `docs_screenshot(browser, name)`: a screenshot a test takes on purpose (README pictures):
  saved with the artifacts, and into docs/images/ when UPDATE_DOCS_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import pytest

from scripts.servers import ADMIN_EMAIL, LabelStudioServer
from tests.e2e.conftest import start_backend, tiny_clip_path  # noqa: F401 - fixtures shared with the e2e layer

from .harness import ARTIFACTS, ROOT, Browser, BrowserMissing, chromium_binaries, launch

DOCS_IMAGES = ROOT / "docs" / "images"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the test item, so the `browser` fixture knows whether the test failed.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


def artifacts_dir(node_name: str) -> Path:
    return ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", node_name)


@pytest.fixture
def browser(request, label_studio: LabelStudioServer, tmp_path) -> Iterator[Browser]:
    try:
        chromium_binaries()
    except BrowserMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    session = launch(label_studio.url, tmp_path / "chromium-profile")
    yield session
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        saved = session.save_failure_artifacts(artifacts_dir(request.node.name))
        print(f"\nbrowser artifacts of the failure: {', '.join(str(p) for p in saved)}")
    session.quit()


@pytest.fixture
def logged_in(browser: Browser, label_studio: LabelStudioServer) -> Browser:
    browser.login(ADMIN_EMAIL, label_studio.password)
    return browser


def docs_screenshot(browser: Browser, name: str) -> Path:
    """Save a screenshot the README shows; docs/images/<name>.png is replaced only on request."""
    path = browser.screenshot(ARTIFACTS / f"{name}.png")
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        browser.screenshot(DOCS_IMAGES / f"{name}.png")
    return path
