"""An annotator's round in real Chromium against the real Label Studio 1.23 and backend process.

In order, on one project: (a) the "Next batch (ML)" tab renders and lists the backend's
batch in score order with the score column; (b) "Label Tasks As Displayed" serves that
batch's first task with its image and nothing pre-selected (score-only predictions, the
default), the hotkey rates it, Submit stores the rating, the backend refits, and the next
task served is the displayed batch's next; (c) reopened, the tab shows the new batch;
(d) with `preselect_rating` on, the labeling form opens with the head's guess selected.

Why a browser: the Data Manager frontend validates saved views itself. A filter operator
it does not know (`in_list`) left the project page loading forever, while every API-level
test passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import requests
from label_studio_sdk import LabelStudio

from ml_backend.adapters.ls_admin import Connected, admin_client, connect_backend, create_project, upload_images
from scripts.demo import make_shape_images
from scripts.servers import BackendServer, LabelStudioServer

from ..e2e.conftest import ROOT, backend_status, settled_view, wait_for
from .conftest import docs_screenshot
from .label_studio_ui import (
    checked_choices, column_header_titles, label_tasks_as_displayed, open_tab, submit, wait_for_task,
)

K = 5
TAB = "Next batch (ML)"
PARAMS = {"prompt": "a red circle", "batch_size": K, "view_title": TAB}
# Label Studio's own frontend asks for a page it does not serve (/heidi-tips): not ours.
LABEL_STUDIO_NOISE = ("/heidi-tips",)


@dataclass
class Scenario:
    client: LabelStudio
    project: int
    backend: BackendServer
    displayed: list[int] = field(default_factory=list)
    rated: int | None = None


@pytest.fixture(scope="module")
def scenario(label_studio: LabelStudioServer, start_backend, tmp_path_factory) -> Scenario:
    client = admin_client(label_studio.url, label_studio.api_token)
    project = create_project(client, "browser: next batch", (ROOT / "label_config.xml").read_text())
    backend = start_backend()
    connect_backend(client, project, backend.url, "CLIP vector queue", PARAMS)
    images = make_shape_images(tmp_path_factory.mktemp("shapes"), per_kind=1)
    upload_images(label_studio.url, label_studio.api_token, project, images)
    return Scenario(client, project, backend)


def test_a_the_tab_lists_the_batch_in_score_order_with_the_score_column(scenario, logged_in):
    view = settled_view(scenario.backend, scenario.project, K)
    rows = open_tab(logged_in, scenario.project, TAB)
    shown = [int(row["tasks:id"]) for row in rows]
    scores = [float(row["tasks:predictions_score"]) for row in rows]
    assert shown == view["task_ids"]
    assert scores == pytest.approx(view["scores"], abs=6e-4)  # the table shows 3 decimals
    assert scores == sorted(scores, reverse=True)
    assert column_header_titles(logged_in)["tasks:predictions_score"] == "Prediction score"
    assert all(row["image"] for row in rows), "every row shows its image"
    assert logged_in.console_errors(ignore=LABEL_STUDIO_NOISE) == []
    docs_screenshot(logged_in, "next-batch-tab")
    scenario.displayed = shown


def test_b_label_tasks_as_displayed_serves_the_batch_and_a_rating_refits(scenario, logged_in):
    displayed = [int(row["tasks:id"]) for row in open_tab(logged_in, scenario.project, TAB)]
    assert displayed == scenario.displayed
    label_tasks_as_displayed(logged_in)
    first = wait_for_task(logged_in)
    assert first == displayed[0]
    assert checked_choices(logged_in) == [], "score-only predictions must not pre-select a rating"

    logged_in.press("3")  # the +1 hotkey of label_config.xml
    logged_in.wait_for(lambda: checked_choices(logged_in) == ["+1"], what="+1 selected by its hotkey")
    docs_screenshot(logged_in, "labeling-page")
    submit(logged_in)
    served = wait_for_task(logged_in, other_than=first)

    view = settled_view(scenario.backend, scenario.project, K, ratings=1)
    [annotation] = scenario.client.tasks.get(first).annotations
    assert annotation["result"][0]["value"]["choices"] == ["+1"]
    assert first not in view["task_ids"]
    # The stream keeps the batch it was opened with; Label Studio orders it by the project's
    # model version, which the refit switches within about a second of the submit: so the
    # next task is the displayed batch's next by the old scores, or its best by the new ones.
    best_by_new_scores = next((t for t in view["task_ids"] if t in displayed[1:]), None)
    assert served in {displayed[1], best_by_new_scores}, (served, displayed, view["task_ids"])
    assert logged_in.console_errors(ignore=LABEL_STUDIO_NOISE) == []
    scenario.rated = first


def test_c_after_the_refit_the_reopened_tab_shows_the_new_batch(scenario, logged_in):
    view = settled_view(scenario.backend, scenario.project, K, ratings=1)
    rows = open_tab(logged_in, scenario.project, TAB)
    assert [int(row["tasks:id"]) for row in rows] == view["task_ids"]
    assert scenario.rated not in view["task_ids"]
    assert view["model_version"] != "clip-head-v1"


def test_d_with_preselect_rating_the_form_opens_with_the_heads_guess(scenario, logged_in, label_studio):
    before = backend_status(scenario.backend, scenario.project)["model_version"]
    connected: Connected = connect_backend(scenario.client, scenario.project, scenario.backend.url, "CLIP vector queue",
                                           {"preselect_rating": True})
    assert connected.reused and connected.params["prompt"] == PARAMS["prompt"]  # merged, not replaced
    # A new head version re-pushes every prediction in the new form.
    wait_for(lambda: backend_status(scenario.backend, scenario.project)["model_version"] != before,
             what="a new head version after switching preselect_rating on")
    view = settled_view(scenario.backend, scenario.project, K, ratings=1)
    rows = open_tab(logged_in, scenario.project, TAB)
    assert [int(row["tasks:id"]) for row in rows] == view["task_ids"]
    label_tasks_as_displayed(logged_in)
    task = wait_for_task(logged_in)
    headers = {"Authorization": f"Token {label_studio.api_token}"}
    predictions = requests.get(f"{label_studio.url}/api/predictions/", params={"task": task}, headers=headers, timeout=30).json()
    [guess] = [p["result"][0]["value"]["choices"] for p in predictions if p["model_version"] == view["model_version"]]
    assert checked_choices(logged_in) == guess


def test_e_after_reset_seen_a_rated_task_is_opened_from_the_tab_and_its_rating_changed(scenario, logged_in):
    # Every task in the tab, so the rated one is there whatever its score.
    connect_backend(scenario.client, scenario.project, scenario.backend.url, "CLIP vector queue", {"batch_size": 12})
    wait_for(lambda: len((backend_status(scenario.backend, scenario.project)["view"] or {}).get("task_ids", [])) == 11,
             what="a batch of the 11 unrated tasks")
    response = requests.post(f"{scenario.backend.url}/projects/{scenario.project}/reset-seen", timeout=30)
    assert response.json() == {"reset": 1}
    view = wait_for(lambda: (s := backend_status(scenario.backend, scenario.project))["worker"]["idle"]
                    and s["seen"] == 0 and len(s["view"]["task_ids"]) == 12 and s["view"],
                    what="the second pass: all 12 tasks in the tab")
    assert scenario.rated in view["task_ids"]

    # What clicking the task's row in the tab does: open it beside the tab's list.
    logged_in.open(f"/projects/{scenario.project}/data?tab={view['id']}&task={scenario.rated}")
    logged_in.wait_for(lambda: checked_choices(logged_in) == ["+1"], what="the task's +1 rating shown")
    logged_in.press("1")
    logged_in.wait_for(lambda: checked_choices(logged_in) == ["-1"], what="-1 selected by its hotkey")
    logged_in.click_text("Update")
    after = wait_for(lambda: (s := backend_status(scenario.backend, scenario.project))["worker"]["idle"]
                     and s["seen"] == 1 and s["head"]["version"] > int(view["model_version"].rsplit("v", 1)[1]) and s,
                     what="the update refitting the head")
    assert scenario.rated not in after["view"]["task_ids"]
    [annotation] = scenario.client.tasks.get(scenario.rated).annotations
    assert annotation["result"][0]["value"]["choices"] == ["-1"]
