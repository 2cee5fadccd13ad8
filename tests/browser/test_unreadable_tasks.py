"""Tasks the backend cannot read are counted where the admin looks: the next-batch tab's title.

Label Studio shows nothing of an ML backend's log. A project importing image URLs from a host
not in IMAGE_HOSTS used to get a short batch and no word why; the tab's title (its tooltip in
Label Studio 1.23) now ends with how many tasks could not be read, and the status says why.
Once the admin fixes the cause and restarts the backend, the tasks are read and the count goes.
"""

from __future__ import annotations

from ml_backend.adapters.ls_admin import admin_client, connect_backend, create_project, import_tasks
from scripts.servers import LabelStudioServer, free_port
from tests.conftest import image_uri, png_bytes
from tests.stubs import LocalServer, Reply

from ..e2e.conftest import ROOT, idle, wait_for
from .harness import ARTIFACTS
from .label_studio_ui import open_project

TAB = "Next batch (ML)"
LABEL_STUDIO_NOISE = ("/heidi-tips",)  # Label Studio's own frontend asks for a page it does not serve


def shown_tab(browser, project: int, title: str):
    open_project(browser, project)
    return browser.wait_for(lambda: [e for e in browser.find_all('[role="tab"]') if e.get_attribute("title") == title],
                            what=f"the tab titled {title!r}")[0]


def test_the_tab_title_counts_the_tasks_the_backend_could_not_read_until_they_are_read(
        label_studio: LabelStudioServer, start_backend, logged_in, tmp_path):
    image_host = LocalServer()  # a host the backend may not fetch from until the admin allows it
    image_host.routes["/cat.png"] = Reply(body=png_bytes(7), headers={"Content-Type": "image/png"})
    try:
        client = admin_client(label_studio.url, label_studio.api_token)
        project = create_project(client, "browser: unreadable tasks", (ROOT / "label_config.xml").read_text())
        model_dir, port = tmp_path / "model_dir", free_port()
        backend = start_backend(model_dir=model_dir, port=port)
        connect_backend(client, project, backend.url, "CLIP vector queue",
                        {"prompt": "a red circle", "batch_size": 2, "view_title": TAB})
        import_tasks(client, project, [{"image": image_uri(seed)} for seed in range(3)] + [{"image": image_host.url("/cat.png")}])

        status = wait_for(lambda: idle(backend, project, lambda s: s["tasks"]["failed"] == 1
                                       and "unreadable" in (s.get("view") or {}).get("title", "")),
                          what="the unreadable task counted in the tab's title")
        title = status["view"]["title"]
        assert title == f"{TAB} · 1 task unreadable: the backend's /projects/{project}/status says why"
        [error] = status["task_errors"]
        assert "127.0.0.1" in error["error"] and "IMAGE_HOSTS" in error["error"]
        assert shown_tab(logged_in, project, title).is_displayed()
        logged_in.screenshot(ARTIFACTS / "unreadable-tasks-tab.png")

        # The admin allows the host and restarts the same backend: the task is read, the count goes.
        backend.stop()
        backend = start_backend(model_dir=model_dir, port=port, IMAGE_HOSTS="127.0.0.1/32")
        status = wait_for(lambda: idle(backend, project, lambda s: s["tasks"]["embedded"] == 4
                                       and "unreadable" not in (s.get("view") or {}).get("title", "unreadable")),
                          what="the task read after the restart and the count gone from the tab's title")
        assert status["tasks"]["failed"] == 0 and status["task_errors"] == []
        assert status["view"]["title"].startswith(TAB)
        assert shown_tab(logged_in, project, status["view"]["title"]).is_displayed()
        logged_in.screenshot(ARTIFACTS / "unreadable-tasks-read.png")
        assert logged_in.console_errors(ignore=LABEL_STUDIO_NOISE) == []
    finally:
        image_host.close()
