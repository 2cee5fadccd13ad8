"""The evaluation an admin reads, in real Chromium: the backend's page, and the summary in Label Studio's tab.

One project of 24 shape images (red circles are the "yes"), the `random` strategy (every
pick is an audit pick), rated batch after batch through Label Studio's API as annotators
working from the tab would. Then: (a) the backend's evaluation page renders its summary,
the suggestion and the four plots, with the numbers of the JSON; (b) Label Studio's
next-batch tab shows the summary's lead (how much of the yes is found, or "stop?") in full, in the
few pixels its tab strip gives a title.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import requests
from selenium.webdriver.common.action_chains import ActionChains
from label_studio_sdk import LabelStudio

from ml_backend.adapters.ls_admin import admin_client, connect_backend, create_project, rate, upload_images
from scripts.demo import make_shape_images
from scripts.servers import BackendServer, LabelStudioServer

from ..e2e.conftest import ROOT, backend_status, wait_for
from .conftest import docs_screenshot
from .label_studio_ui import open_project

K = 6
TAB = "Next batch (ML)"
PARAMS = {"prompt": "a red circle", "batch_size": K, "view_title": TAB, "strategy": "random"}
ROUNDS = 3
LABEL_STUDIO_NOISE = ("/heidi-tips",)


@dataclass
class Scenario:
    client: LabelStudio
    project: int
    backend: BackendServer


def evaluation(backend: BackendServer, project: int) -> dict:
    response = requests.get(f"{backend.url}/projects/{project}/evaluation", timeout=60)
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def scenario(label_studio: LabelStudioServer, start_backend, tmp_path_factory) -> Scenario:
    client = admin_client(label_studio.url, label_studio.api_token)
    project = create_project(client, "browser: evaluation", (ROOT / "label_config.xml").read_text())
    backend = start_backend()
    connect_backend(client, project, backend.url, "CLIP vector queue", PARAMS)
    images = make_shape_images(tmp_path_factory.mktemp("shapes"), per_kind=2)
    task_ids = upload_images(label_studio.url, label_studio.api_token, project, images)
    is_yes = {t: p.name.startswith("red-circle") for t, p in zip(task_ids, images)}
    rated: set[int] = set()
    for round_ in range(ROUNDS):
        view = wait_for(lambda: (s := backend_status(backend, project))["worker"]["idle"]
                        and s["rated_tasks"] == len(rated) and len((s["view"] or {}).get("task_ids", [])) == K
                        and s["view"], what=f"the batch of round {round_ + 1}")
        for task in view["task_ids"]:  # what an annotator working through the tab rates
            rate(client, task, "+1" if is_yes[task] else "-1", to_name="image")
            rated.add(task)
    wait_for(lambda: (e := evaluation(backend, project)["current"]) and e["audit"]["complete_draws"] == ROUNDS
             and e["labels"] == len(rated) and backend_status(backend, project)["worker"]["idle"],
             what="the evaluation of every round's draw, with no refit pending")
    return Scenario(client, project, backend)


def test_a_the_evaluation_page_shows_the_summary_the_suggestion_and_the_plots(scenario, browser):
    browser.driver.set_window_size(1280, 1500)
    page = f"{scenario.backend.url}/projects/{scenario.project}/evaluation/page"

    def page_and_json_of_one_model_version():
        # A late webhook can still bring one more refit; compare the page with the JSON of the version it shows.
        browser.driver.get(page)
        summary = browser.wait_for(lambda: browser.find_all("#summary"), what="the summary table")[0]
        current = evaluation(scenario.backend, scenario.project)["current"]
        return (summary, current) if current["model_version"] in summary.text else None

    summary, current = wait_for(page_and_json_of_one_model_version, timeout_s=60, every_s=2,
                                what="the page and the JSON on one model version")
    pool = current["pool"]
    assert f"{pool['positives']['value']:.0f} ({pool['positives']['low']:.0f} to {pool['positives']['high']:.0f})" \
        in summary.text
    head = current["head"]
    if head["precision"]:
        precision = f"{head['precision']['value']:.2f} ({head['precision']['low']:.2f} to {head['precision']['high']:.2f})"
    elif head["precision_bounds"]:
        precision = f"between {head['precision_bounds'][0]:.2f} and {head['precision_bounds'][1]:.2f}"
    else:
        precision = "undefined: the head says yes to no task"
    assert f"head precision at 0.5 {precision}" in summary.text
    suggestion = browser.find_all("#suggestion")[0].text
    assert suggestion.startswith("Suggestion: stop" if current["stopping"]["stop"] else "Keep labeling")
    # every plot drawn, with a size on the page
    sizes = browser.driver.execute_script(
        "return [...document.querySelectorAll('figure svg')].map(s => s.getBoundingClientRect().height)")
    assert len(sizes) == 4 and all(h > 100 for h in sizes)
    assert browser.console_errors() == []
    docs_screenshot(browser, "evaluation-page")


# Where the tab's lead ends on screen, and where what the tab strip shows of its text ends: its
# span clips with an ellipsis, and the tab's options button (on hover) covers its right end.
_LEAD_ON_SCREEN = """
const [tab, chars] = arguments;
const span = tab.querySelector('span');
const range = document.createRange();
range.setStart(span.firstChild, 0); range.setEnd(span.firstChild, chars);
const ellipsis = document.createElement('span');
ellipsis.textContent = '\\u2026'; span.parentElement.appendChild(ellipsis);
const ellipsisWidth = ellipsis.getBoundingClientRect().width; ellipsis.remove();
const clipped = span.scrollWidth > span.clientWidth;
let shownRight = span.getBoundingClientRect().right - (clipped ? ellipsisWidth : 0);
const options = tab.parentElement.querySelector('button[aria-label="Tab options"]');
if (options) shownRight = Math.min(shownRight, options.getBoundingClientRect().left);
return {leadRight: range.getBoundingClientRect().right, shownRight: shownRight, options: !!options};
"""


def test_b_label_studios_tab_shows_the_summary_s_lead_in_full(scenario, logged_in):
    def title_with_the_current_summary():
        status = backend_status(scenario.backend, scenario.project)
        title, summary = status["view"]["title"], status["evaluation"]["summary"]
        return summary and title.endswith(f" · {TAB} · {summary}") and title

    # the lead, the admin's view_title, then the summary /status shows
    title = wait_for(title_with_the_current_summary, what="the tab's title with the current summary")
    lead = title.split(" · ")[0]
    assert re.fullmatch(r"(found|stop\?) ≥\d+%", lead), lead
    open_project(logged_in, scenario.project)
    tab = logged_in.wait_for(lambda: [e for e in logged_in.find_all('[role="tab"]') if e.get_attribute("title") == title],
                             what=f"the tab titled {title!r}")[0]
    ActionChains(logged_in.driver).move_to_element(tab).perform()  # as a pointer over the tab strip shows it
    # Label Studio 1.23 shows a tab's first ~110 px; the whole title is the tab's tooltip (its title attribute).
    shown = logged_in.driver.execute_script(_LEAD_ON_SCREEN, tab, len(lead))
    assert tab.is_displayed() and shown["options"] and shown["leadRight"] <= shown["shownRight"], shown
    assert logged_in.console_errors(ignore=LABEL_STUDIO_NOISE) == []
    docs_screenshot(logged_in, "next-batch-tab-summary")
