"""Tasks the backend cannot read are counted where the admin looks: the next-batch tab's title.

Label Studio shows nothing of an ML backend's log. A project importing image URLs from a host
not in IMAGE_HOSTS used to get a short batch and no word why; the tab's title (its tooltip in
Label Studio 1.23) now ends with how many tasks could not be read, and the status says why.
"""

from __future__ import annotations

from ml_backend.adapters.ls_admin import admin_client, connect_backend, create_project, import_tasks
from scripts.servers import LabelStudioServer
from tests.conftest import image_uri

from ..e2e.conftest import ROOT, idle, wait_for
from .harness import ARTIFACTS
from .label_studio_ui import open_project

TAB = "Next batch (ML)"
UNREADABLE = "http://images.example.com/cat.png"
LABEL_STUDIO_NOISE = ("/heidi-tips",)  # Label Studio's own frontend asks for a page it does not serve


def test_the_tab_title_counts_the_tasks_the_backend_could_not_read(label_studio: LabelStudioServer, start_backend,
                                                                    logged_in):
    client = admin_client(label_studio.url, label_studio.api_token)
    project = create_project(client, "browser: unreadable tasks", (ROOT / "label_config.xml").read_text())
    backend = start_backend()
    connect_backend(client, project, backend.url, "CLIP vector queue",
                    {"prompt": "a red circle", "batch_size": 2, "view_title": TAB})
    import_tasks(client, project, [{"image": image_uri(seed)} for seed in range(3)] + [{"image": UNREADABLE}])

    status = wait_for(lambda: idle(backend, project, lambda s: s["tasks"]["failed"] == 1
                                   and "unreadable" in (s.get("view") or {}).get("title", "")),
                      what="the unreadable task counted in the tab's title")
    title = status["view"]["title"]
    assert title == f"{TAB} · 1 task unreadable: the backend's /projects/{project}/status says why"
    [error] = status["task_errors"]
    assert "images.example.com" in error["error"] and "IMAGE_HOSTS" in error["error"]

    open_project(logged_in, project)
    tab = logged_in.wait_for(lambda: [e for e in logged_in.find_all('[role="tab"]') if e.get_attribute("title") == title],
                             what=f"the tab titled {title!r}")[0]
    assert tab.is_displayed()
    logged_in.screenshot(ARTIFACTS / "unreadable-tasks-tab.png")
    assert logged_in.console_errors(ignore=LABEL_STUDIO_NOISE) == []
