"""`LabelStudioClient`'s own calls against the real Label Studio 1.23: paging to the end of the task
listing, the Data Manager's columns, deleting an old model version's predictions (these two
are plain HTTP calls the SDK has no wrapper for), and the import webhook made once."""

from __future__ import annotations

import pytest

from ml_backend.adapters.ls_admin import create_project, import_tasks
from ml_backend.adapters.ls_client import LabelStudioClient

from .conftest import ROOT

CONFIG = (ROOT / "label_config.xml").read_text()


@pytest.fixture(scope="module")
def project(client):
    project = create_project(client, "adapter contract", CONFIG)
    import_tasks(client, project, [{"image": f"https://example.invalid/{i}.png"} for i in range(7)])
    return project


@pytest.fixture
def ls(label_studio):
    """The backend's own client, as the worker uses it."""
    return LabelStudioClient(label_studio.url, label_studio.api_token, timeout_s=15)


def test_the_listing_reads_every_page_and_ends_on_label_studios_answer_past_the_end(ls, project):
    tasks = list(ls.iter_tasks(project, page_size=3))
    listed = [task["id"] for task in tasks]
    assert len(listed) == len(set(listed)) == 7 == ls.counts(project).tasks
    # what tells a task imported again under a reused id from the old one (Facts.list_tasks)
    assert all(task["created_at"] for task in tasks)


def test_the_columns_listing_is_read_and_keeps_the_score_column_shown(ls, project):
    hidden = ls._batch_hidden_columns(project)
    assert hidden is not None and hidden["explore"]
    assert "tasks:predictions_score" not in hidden["explore"]


def test_an_old_model_versions_predictions_are_deleted(ls, client, project):
    task_ids = [task["id"] for task in ls.iter_tasks(project)]
    result = [{"from_name": "relevance", "to_name": "image", "type": "choices", "value": {"choices": ["+1"]}}]
    for version in ("contract-v1", "contract-v2"):
        ls.push_predictions(project, [{"task": t, "result": result, "score": 0.5, "model_version": version}
                                      for t in task_ids])
    ls.delete_model_version(project, "contract-v1")
    left = {p.model_version for p in client.predictions.list(task=task_ids[0])}
    assert left == {"contract-v2"}


def test_the_import_webhook_is_made_once_and_found_again_by_its_id(ls, client, project, monkeypatch):
    from ml_backend.adapters import ls_client

    monkeypatch.setattr(ls_client, "HOOK_SETTLE_S", 0.0)
    backend = "http://127.0.0.1:9/contract"  # never called: only the hook's record matters here
    first = ls.ensure_webhook(project, [backend])
    again = ls.ensure_webhook(project, [backend])
    assert len(first) == 1 and [h.id for h in again] == [first[0].id]
    assert ls._hook_exists(first[0].id)
    client.webhooks.delete(id=first[0].id)
    assert not ls._hook_exists(first[0].id)


def test_a_next_batch_view_deleted_in_label_studio_is_made_again_and_kept_otherwise(ls, client, project):
    """Only Label Studio's 404 says the view is gone (any other refusal keeps it, so tabs do not pile up)."""
    task_ids = [task["id"] for task in ls.iter_tasks(project)]
    first = ls.push_view(project, "Next batch (contract)", task_ids[:3], None)
    assert ls.push_view(project, "Next batch (contract)", task_ids[:2], first) == first
    client.views.delete(id=str(first))
    again = ls.push_view(project, "Next batch (contract)", task_ids[:2], first)
    assert again != first
    assert [v.id for v in client.views.list(project=project) if v.id in (first, again)] == [again]
