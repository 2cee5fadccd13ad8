"""GET /projects/<id>/evaluation and its page, on a real runtime (ledger, Chroma, worker, audit log).

The annotator is simulated: each round takes the batch the loop selects (as the worker
would push it to the tab) and rates it through /webhook; a task is "yes" when its id is
even. With the `random` strategy every pick is a uniform draw, so the estimates have an
audit sample to work from.
"""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
from matplotlib.figure import Figure

from ml_backend.core.audit import NOT_SEEN, AuditDraw, AuditSample
from ml_backend.core.evaluation import MIN_STRATUM_DRAWS, estimate_pool
from ml_backend.service.evaluation import tab_lead
from ml_backend.service.evaluation_page import render_page

K = 4
TASKS = list(range(1, 25))
PARAMS = {"prompt": "a red square", "batch_size": K, "strategy": "random"}


def truth(task_id: int) -> str:
    return "+1" if task_id % 2 == 0 else "-1"


@pytest.fixture
def project(backend):
    assert backend.setup(extra_params=PARAMS).status_code == 200
    backend.tasks_created(TASKS)
    backend.wait()
    return backend


def rate(backend, task_ids, first_annotation=1000):
    # One refit per rating, waited for: the head versions (and so the next draw's seed) do not depend
    # on how many ratings one refit happened to take in on a busy machine.
    for i, task_id in enumerate(task_ids):
        assert backend.annotate(first_annotation + task_id, task_id, [truth(task_id)]).status_code == 200
        backend.wait()


def round_of_labeling(backend, k: int | None = None):
    batch = [t.task_id for t in backend.loop().select_batch(k)]
    rate(backend, batch)
    return batch


def evaluation(backend, project=1):
    response = backend.get(f"/projects/{project}/evaluation")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_the_evaluation_is_the_estimators_answer_on_the_audit_sample_the_loop_recorded(project):
    rounds = [round_of_labeling(project) for _ in range(3)]
    rated = [t for batch in rounds for t in batch]
    report = evaluation(project)
    current = report["current"]
    assert current["version"] == project.loop().current_head().version
    assert current["model_version"] == report["model_version"]
    assert current["audit"] == {"epoch": 1, "draws": 3, "complete_draws": 3, "pending_tasks": []}
    pool = current["pool"]
    found = sum(truth(t) == "+1" for t in rated)
    assert pool["positives_found"] == found and pool["seen"] == len(rated) == 3 * K
    # what the estimators say of the sample this test knows it made: batch r drawn from the
    # 24 - K r tasks unseen then, and seen from the next draw on
    row = {t: i for i, t in enumerate(TASKS)}
    labels, seen_at = np.full(len(TASKS), np.nan), np.full(len(TASKS), NOT_SEEN)
    draws = []
    for seq, batch in enumerate(rounds):
        rows = np.array([row[t] for t in batch])
        labels[rows] = [truth(t) == "+1" for t in batch]
        seen_at[rows] = seq + 1
        draws.append(AuditDraw(seq, rows, len(TASKS) - K * seq))
    expected = estimate_pool(AuditSample(labels, seen_at, tuple(draws)))
    assert pool["positives"] == expected.positives.rounded()
    assert pool["labeling_recall"] == expected.labeling_recall.rounded()
    assert pool["recall_reached"] == round(expected.recall_reached, 4)
    assert pool["uniform_to_certify"] == expected.uniform_to_certify
    assert not current["stopping"]["target_reached"]  # the tab's few words: the recall interval's lower end
    assert tab_lead(current) == f"found ≥{int(expected.labeling_recall.rounded()['low'] * 100 + 1e-9)}%"
    head = current["head"]
    assert head["threshold"] == 0.5 and 0 <= head["predicted_positive"] <= len(TASKS)
    assert set(head) >= {"precision", "recall", "average_precision"}
    # one entry per head version evaluated, labels never going down
    history = report["history"]
    assert [h["version"] for h in history] == sorted({h["version"] for h in history})
    assert [h["labels"] for h in history] == sorted(h["labels"] for h in history)
    assert history[-1]["version"] == current["version"] and "scores" not in history[-1]
    assert sum(current["scores"]["unseen"]) == len(TASKS) - len(rated)
    assert report["params"]["target_recall"] == 0.9
    assert report["links"]["page"] == "/projects/1/evaluation/page"


def test_a_draw_waiting_for_ratings_stays_in_the_batch_and_is_not_drawn_again(project):
    loop = project.loop()
    first = [t.task_id for t in loop.select_batch()]
    assert sorted(first) == sorted([t.task_id for t in loop.select_batch()])  # the same draw, still pending
    rate(project, first[:2])
    second = [t.task_id for t in loop.select_batch()]
    assert set(first[2:]) <= set(second) and len(second) == K
    current = evaluation(project)["current"]
    assert current["audit"]["draws"] == 1 and current["audit"]["complete_draws"] == 0
    assert sorted(current["audit"]["pending_tasks"]) == sorted(first[2:])
    rate(project, first[2:])
    current = evaluation(project)["current"]
    assert current["audit"]["complete_draws"] == 1 and current["audit"]["pending_tasks"] == []


def test_when_every_task_is_rated_the_stop_suggestion_says_the_target_is_reached(project):
    while len(project.runtime.projects.ledger.seen_task_ids(1)) < len(TASKS):
        round_of_labeling(project)
    current = evaluation(project)["current"]
    assert current["pool"]["labeling_recall"] == {"value": 1.0, "low": 1.0, "high": 1.0}
    assert current["stopping"]["stop"] and current["stopping"]["target_reached"]
    assert current["stopping"]["reasons"][0].startswith("Target recall reached")
    assert current["pool"]["uniform_to_certify"] == 0
    status = project.status()["evaluation"]
    assert status["stop"] and status["summary"].startswith("stop? found >= 90% of yes")
    assert tab_lead(current) == "stop? ≥90%"
    assert status["page"] == "/projects/1/evaluation/page" and status["json"] == "/projects/1/evaluation"


def test_the_page_shows_the_summary_the_suggestion_and_four_plots(project):
    for _ in range(2):
        round_of_labeling(project)
    response = project.get("/projects/1/evaluation/page")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    current = evaluation(project)["current"]
    assert "Evaluation of project 1" in page and current["model_version"] in page
    assert 'id="summary"' in page and 'id="suggestion"' in page
    # two rounds of 24 tasks certify nothing yet: the page says what certifying would take
    picks = current["pool"]["uniform_to_certify"]
    assert not current["stopping"]["target_reached"] and picks > 0
    assert f"Certifying the target takes at least {picks} more uniform picks" in page
    assert len(re.findall(r"<svg\b", page)) == 4
    assert 'href="/projects/1/evaluation"' in page


def test_a_history_without_any_head_estimate_draws_no_empty_head_plot(project):
    round_of_labeling(project)
    report = evaluation(project)
    heads = [entry["head"] for entry in report["history"] if entry.get("head")]
    assert heads
    for head in heads:
        head.update(precision=None, recall=None, average_precision=None)  # all withheld or undefined
    page = render_page(report)
    head_section = page.split("The head's quality on the pool</h2>", 1)[1].split("<h2>", 1)[0]
    assert head_section == "<p>Nothing to plot yet.</p>"
    assert len(re.findall(r"<svg\b", page)) == 3


def test_pages_requested_at_once_draw_their_figures_one_at_a_time(project, monkeypatch):
    """matplotlib's mathtext parser is not thread-safe: concurrent drawing failed with 500s."""
    round_of_labeling(project)
    report = evaluation(project)
    inside, most = [0], [0]
    lock = threading.Lock()
    tight_layout = Figure.tight_layout

    def counting_tight_layout(figure, *args, **kwargs):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)  # long enough for every thread to get here, were they not kept apart
        try:
            return tight_layout(figure, *args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(Figure, "tight_layout", counting_tight_layout)
    pages = []
    threads = [threading.Thread(target=lambda: pages.append(render_page(report))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(pages) == 4 and most[0] == 1


def test_before_any_head_there_is_nothing_to_evaluate(backend):
    assert backend.setup(extra_params={"strategy": "random"}).status_code == 200
    backend.tasks_created([1, 2, 3])
    backend.wait()
    report = evaluation(backend)
    assert report["current"] is None and report["history"] == []
    page = backend.get("/projects/1/evaluation/page").get_data(as_text=True)
    assert "No evaluation yet" in page


def _cold_notes(report) -> list[str]:
    return [n for n in report["current"]["notes"] if n.startswith("no positive rating yet")]


def test_a_project_with_no_prompt_and_only_negative_ratings_is_told_to_give_one(backend):
    assert backend.setup(extra_params={"strategy": "random", "batch_size": K}).status_code == 200
    backend.tasks_created(TASKS)
    backend.wait()
    rate(backend, [1, 3, 5])
    (note,) = _cold_notes(evaluation(backend))
    assert note.startswith("no positive rating yet in 3 ratings, and no prompt")
    page = backend.get("/projects/1/evaluation/page").get_data(as_text=True)
    assert "one task known to be positive rated +1" in page
    rate(backend, [2])
    assert _cold_notes(evaluation(backend)) == []


def test_a_project_with_a_prompt_gets_no_cold_start_note(project):
    rate(project, [1, 3, 5])
    assert _cold_notes(evaluation(project)) == []


def test_an_unknown_project_is_a_404(backend):
    for path in ("/projects/99/evaluation", "/projects/99/evaluation/page"):
        response = backend.get(path)
        assert response.status_code == 404
        assert response.get_json()["error"] == "unknown_project"



def test_precision_and_average_precision_wait_for_audit_draws_and_the_page_says_why(project):
    states = set()

    def check_estimates_are_shown_only_with_enough_draws() -> dict:
        head = evaluation(project)["current"]["head"]
        fewest, above = head["fewest_stratum_draws"], head["above_threshold_draws"]
        page = project.get("/projects/1/evaluation/page").get_data(as_text=True)
        ap_not_yet = f"head average precision</th><td>not yet: needs 2 audit picks above and below 0.5 (fewest so far: {fewest})"
        all_rated = len(project.runtime.projects.ledger.seen_task_ids(1)) == len(TASKS)
        if all_rated:  # known exactly, no draw needed
            assert head["average_precision"]["low"] == head["average_precision"]["high"]
        elif fewest < MIN_STRATUM_DRAWS == 2:
            assert head["average_precision"] is None and ap_not_yet in page
        else:
            assert head["average_precision"] is not None and "not yet" not in page
        if head["predicted_positive"]:
            low, high = head["precision_bounds"]
            if head["precision"] is None:
                states.add("precision withheld")
                assert above < MIN_STRATUM_DRAWS and low < high
                assert (f"head precision at 0.5</th><td>between {low:.2f} and {high:.2f} (what the ratings prove); an "
                        f"estimate needs 2 audit picks above 0.5 (so far: {above})") in page
            else:
                states.add("precision exact" if low == high else "precision estimated")
                assert low - 1e-4 <= head["precision"]["low"] <= head["precision"]["high"] <= high + 1e-4
                assert "what the ratings prove" not in page
        return head

    round_of_labeling(project, k=1)  # a draw of one task: at most one audit pick in any score stratum
    assert check_estimates_are_shown_only_with_enough_draws()["fewest_stratum_draws"] < MIN_STRATUM_DRAWS
    while len(project.runtime.projects.ledger.seen_task_ids(1)) < len(TASKS):
        round_of_labeling(project)
        assert check_estimates_are_shown_only_with_enough_draws()["recall"] is not None
    head = evaluation(project)["current"]["head"]
    assert head["average_precision"]["low"] == head["average_precision"]["high"]
    assert "not yet" not in project.get("/projects/1/evaluation/page").get_data(as_text=True)
    assert states == {"precision withheld", "precision estimated", "precision exact"}
