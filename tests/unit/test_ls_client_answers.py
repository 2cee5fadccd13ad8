"""`LabelStudioClient` against a Label Studio stand-in on loopback that answers the way a misbehaving
or differently configured server does (found by fuzzing the backend's Label Studio side, 2026-12-01).
A task listing cut short must fail, never pass for complete; an answer of the wrong shape must not
stop the calls that do not need it."""

from __future__ import annotations

import json

import pytest

from ml_backend.adapters.ls_client import LabelStudioClient, LabelStudioRejected, LabelStudioUnavailable
from ml_backend.adapters.ls_gateway import ProjectCounts
from tests.stubs import Reply

TASKS = "/api/tasks/"
P = 7


def task(task_id, annotations=()):
    return {"id": task_id, "data": {"image": f"/img/{task_id}.png"}, "annotations": list(annotations)}


def pages(tasks: list[dict], served_per_page: int | None = None, broken_page: int | None = None,
          broken: Reply | None = None):
    """A tasks route: `served_per_page` caps the page size whatever was asked (as Label Studio's
    TASK_API_PAGE_SIZE_MAX does); page `broken_page` answers `broken`; 404 one page past the end."""

    def route(query: dict[str, str]) -> Reply:
        page = int(query.get("page", 1))
        size = min(int(query.get("page_size", 100)), served_per_page or 10**9)
        if page == broken_page:
            return broken
        chunk = tasks[(page - 1) * size: page * size]
        if page > 1 and not chunk:
            return Reply(status=404, body=b'{"detail": "Invalid page."}', headers={"Content-Type": "application/json"})
        return Reply(body=json.dumps({"tasks": chunk, "total": len(tasks)}).encode(),
                     headers={"Content-Type": "application/json"})

    return route


@pytest.fixture
def server(http_server):
    return http_server


@pytest.fixture
def client(server):
    return LabelStudioClient(server.origin, api_key="0123456789abcdef0123456789abcdef01234567", timeout_s=5)


def test_a_server_serving_fewer_per_page_than_asked_is_read_to_the_end(server, client):
    """A short page is not the last one: with a page-size cap of 100, reading stopped after the first
    page, and the sync then deleted every annotation on the other pages."""
    server.routes[TASKS] = pages([task(t) for t in range(1, 251)], served_per_page=100)
    assert [t["id"] for t in client.iter_tasks(P, page_size=500)] == list(range(1, 251))


@pytest.mark.parametrize("broken", [
    Reply(status=403, body=b'{"detail": "forbidden"}', headers={"Content-Type": "application/json"}),
    Reply(status=200, body=b"<html>maintenance</html>", headers={"Content-Type": "text/html"}),
], ids=["403", "html"])
def test_a_later_page_refused_or_garbled_fails_the_listing(server, client, broken):
    server.routes[TASKS] = pages([task(t) for t in range(1, 21)], served_per_page=10, broken_page=2, broken=broken)
    with pytest.raises(LabelStudioRejected):
        list(client.iter_tasks(P, page_size=10))


def test_a_server_ignoring_the_page_number_fails_instead_of_listing_forever(server, client):
    def same_page_every_time(query):  # (empty after 5 requests, so that a regression fails, not hangs)
        served = [task(t) for t in range(1, 11)] if len(server.requests) <= 5 else []
        return Reply(body=json.dumps({"tasks": served}).encode(), headers={"Content-Type": "application/json"})

    server.routes[TASKS] = same_page_every_time
    with pytest.raises(LabelStudioRejected, match="no new task at page 2"):
        list(client.iter_tasks(P, page_size=10))
    assert len(server.requests) == 2


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic, dumping the SDK's model of a string annotation
def test_entries_without_a_valid_id_or_annotation_objects_are_skipped(server, client):
    listed = [task(1, [{"id": 5, "result": []}, "not an annotation"]), {"id": None, "data": {}}, task(-3),
              task(2**70), task(2)]
    server.routes[TASKS] = pages(listed)
    tasks = list(client.iter_tasks(P, page_size=100))
    assert [t["id"] for t in tasks] == [1, 2]
    assert tasks[0]["annotations"] == [{"id": 5, "result": []}]


COLUMNS = "/api/dm/columns/"


@pytest.mark.parametrize("body", [[{"id": "id"}], {"columns": ["id", "data"]}, {"columns": {"id": "x"}}, {}],
                         ids=["a list", "names only", "an object", "no columns"])
def test_a_columns_answer_of_the_wrong_shape_leaves_the_default_columns(server, client, body):
    """It raised AttributeError, and the push (predictions, view, model version) failed every time."""
    server.routes[COLUMNS] = Reply(body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert client._batch_hidden_columns(P) is None


def test_a_columns_answer_hides_label_studios_hidden_columns_but_the_score(server, client):
    columns = [{"id": "total_annotations", "target": "tasks", "visibility_defaults": {"explore": False, "labeling": False}},
               {"id": "predictions_score", "target": "tasks", "visibility_defaults": {"explore": False}},
               {"id": "image", "target": "tasks", "parent": "data", "visibility_defaults": {"explore": False}},
               {"id": 5, "target": "tasks"}, "not a column"]
    server.routes[COLUMNS] = Reply(body=json.dumps({"columns": columns}).encode(), headers={"Content-Type": "application/json"})
    assert client._batch_hidden_columns(P) == {"explore": ["tasks:total_annotations"], "labeling": ["tasks:total_annotations"]}


def test_an_answer_dripping_a_byte_per_read_ends_at_the_deadline(server):
    """Timeouts per read let a body sent a byte at a time hold the call (and the worker thread, which
    serves every project) until it ends; now each answer's body has a deadline of a few reads."""
    import time

    from ml_backend.adapters.ls_client import ANSWER_DEADLINE_READS, LabelStudioUnavailable

    client = LabelStudioClient(server.origin, api_key="0123456789abcdef0123456789abcdef01234567", timeout_s=0.3)
    body = b'{"id": 7, "task_number": 3' + b" " * 200 + b"}"  # 10 s at 0.05 s a byte, each read well in time
    server.routes[f"/api/projects/{P}/"] = Reply(body=body, drip_s=0.05, headers={"Content-Type": "application/json"})
    started = time.monotonic()
    with pytest.raises(LabelStudioUnavailable):
        client.counts(P).tasks
    elapsed = time.monotonic() - started
    attempts = 3  # the client's own retries of a transient failure
    assert elapsed < attempts * (ANSWER_DEADLINE_READS * 0.3 + 0.5) + 2.0, elapsed


def test_an_answer_dripping_its_headers_a_byte_per_read_ends_at_the_deadline(server):
    """The body's deadline left the status line and headers timed per read: headers dripped a byte
    per 0.05 s held the call for as long as they lasted. One deadline now covers the whole answer."""
    import time

    from ml_backend.adapters.ls_client import ANSWER_DEADLINE_READS, LabelStudioUnavailable

    client = LabelStudioClient(server.origin, api_key="0123456789abcdef0123456789abcdef01234567", timeout_s=0.3)
    server.routes[f"/api/projects/{P}/"] = Reply(body=b'{"id": 7, "task_number": 3}', header_drip_s=0.05,
                                                 headers={"Content-Type": "application/json", "X-Padding": "p" * 200})
    started = time.monotonic()
    with pytest.raises(LabelStudioUnavailable):  # 12 s of headers at 0.05 s a byte, each read well in time
        client.counts(P).tasks
    elapsed = time.monotonic() - started
    attempts = 3  # the client's own retries of a transient failure
    assert elapsed < attempts * (ANSWER_DEADLINE_READS * 0.3 + 0.5) + 2.0, elapsed


def busy(retry_after: str, then: Reply, times: int = 1):
    """A route answering 429 with `retry_after` the first `times` requests, then `then`."""
    asked = []

    def route(query):
        asked.append(query)
        if len(asked) <= times:
            return Reply(status=429, body=b'{"detail": "slow down"}',
                         headers={"Content-Type": "application/json", "Retry-After": retry_after})
        return then

    return route


PROJECT = Reply(body=b'{"id": 7, "task_number": 3}', headers={"Content-Type": "application/json"})


def test_a_short_retry_after_is_waited_out_within_the_call(server, client):
    """Retry-After was ignored: the retries came after 0.2-0.4 s whatever the server asked."""
    import time

    server.routes[f"/api/projects/{P}/"] = busy("1", PROJECT)
    started = time.monotonic()
    assert client.counts(P).tasks == 3
    assert time.monotonic() - started >= 0.95
    assert len(server.requests) == 2


@pytest.mark.parametrize("header", ["120", "date"])
def test_a_long_retry_after_ends_the_call_at_once_and_says_how_long(server, client, header):
    """Holding the worker thread (every project's) for two minutes is worse than leaving the wait to
    the worker's schedule; and three quick retries would ignore what the server asked."""
    import email.utils
    import time

    from ml_backend.adapters.ls_client import LabelStudioUnavailable

    value = "120" if header == "120" else email.utils.formatdate(time.time() + 120, usegmt=True)
    server.routes[f"/api/projects/{P}/"] = busy(value, PROJECT, times=5)
    with pytest.raises(LabelStudioUnavailable, match="retry after") as raised:
        client.counts(P).tasks
    assert len(server.requests) == 1
    assert 110 <= raised.value.retry_after_s <= 120


def test_a_retry_after_that_is_not_a_time_is_ignored(server, client):
    server.routes[f"/api/projects/{P}/"] = busy("soon", PROJECT)
    assert client.counts(P).tasks == 3
    assert len(server.requests) == 2


def test_a_webhook_listing_that_leaves_out_our_hook_gets_no_second_one(server, client, monkeypatch):
    """Every sync checks that imports reach the backend; a listing that hid the hook made here
    (a proxy, a permission) made every sync create one more, without end."""
    from ml_backend.adapters import ls_client

    monkeypatch.setattr(ls_client, "HOOK_SETTLE_S", 0.0)
    json_reply = {"Content-Type": "application/json"}
    hook = {"id": 41, "url": "http://backend:9090/webhook", "actions": ["TASKS_CREATED"], "send_for_all_actions": False,
            "send_payload": True, "is_active": True, "headers": {}, "project": P}
    server.routes["/api/webhooks/"] = Reply(body=b"[]", headers=json_reply)   # never shows it
    server.routes["POST /api/webhooks/"] = Reply(status=201, body=json.dumps(hook).encode(), headers=json_reply)
    server.routes["/api/webhooks/41/"] = Reply(body=json.dumps(hook).encode(), headers=json_reply)
    for _ in range(3):
        client.ensure_webhook(P, ["http://backend:9090"])
    assert [path for path, _ in server.requests].count("POST /api/webhooks/") == 1

    server.routes["/api/webhooks/41/"] = Reply(status=404, body=b'{"detail": "Not found."}', headers=json_reply)
    client.ensure_webhook(P, ["http://backend:9090"])  # deleted meanwhile: made again
    assert [path for path, _ in server.requests].count("POST /api/webhooks/") == 2


@pytest.mark.parametrize("listed_actions, made", [
    (None, ["TASKS_CREATED", "TASKS_DELETED", "ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"]),
    (["TASKS_CREATED"], ["TASKS_DELETED", "ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"]),
    ("all", None),
])
def test_a_webhook_is_added_only_for_the_events_no_hook_covers(server, client, monkeypatch, listed_actions, made):
    """An admin who deleted Label Studio's all-actions hook lost every later rating: the hook the sync
    added covered imports only. The admin's own hooks are left as they are."""
    from ml_backend.adapters import ls_client

    monkeypatch.setattr(ls_client, "HOOK_SETTLE_S", 0.0)
    json_reply = {"Content-Type": "application/json"}
    listed = [] if listed_actions is None else [
        {"id": 40, "url": "http://backend:9090/webhook", "actions": [] if listed_actions == "all" else listed_actions,
         "send_for_all_actions": listed_actions == "all", "send_payload": True, "is_active": True, "headers": {},
         "project": P}]
    created = {"id": 41, "url": "http://backend:9090/webhook", "actions": made or [], "send_for_all_actions": False,
               "send_payload": True, "is_active": True, "headers": {}, "project": P}
    server.routes["/api/webhooks/"] = Reply(body=json.dumps(listed).encode(), headers=json_reply)
    server.routes["POST /api/webhooks/"] = Reply(status=201, body=json.dumps(created).encode(), headers=json_reply)
    hooks = client.ensure_webhook(P, ["http://backend:9090"])
    posts = [path for path, _ in server.requests if path.startswith(("POST", "PATCH", "PUT", "DELETE"))]
    if made is None:
        assert posts == [] and [h.id for h in hooks] == [40]
    else:
        assert posts == ["POST /api/webhooks/"] and sorted(h.id for h in hooks) == ([40, 41] if listed else [41])
        assert server.bodies[-1]["actions"] == made


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic, dumping the SDK's model of a string count
@pytest.mark.parametrize("number", ["null", '"many"', "-1"])
def test_a_project_answer_without_a_usable_task_count_says_so(server, client, number):
    server.routes[f"/api/projects/{P}/"] = Reply(body=f'{{"id": 7, "task_number": {number}}}'.encode(),
                                                 headers={"Content-Type": "application/json"})
    assert client.counts(P).tasks is None


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("fields, count", [('"total_annotations_number": 5, "skipped_annotations_number": 2', 7),
                                           ('"total_annotations_number": 5', None),
                                           ('"total_annotations_number": "many", "skipped_annotations_number": 2', None)])
def test_the_annotation_count_includes_skips_and_says_when_it_is_not_given(server, client, fields, count):
    server.routes[f"/api/projects/{P}/"] = Reply(body=f'{{"id": 7, "task_number": 3, {fields}}}'.encode(),
                                                 headers={"Content-Type": "application/json"})
    assert client.counts(P) == ProjectCounts(tasks=3, annotations=count)
    assert [path for path, _ in server.requests] == [f"/api/projects/{P}/"]  # both counts from one answer


# -- a second pass (2026-12-02) ------------------------------------------------------------

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("body", [b"[]", b"null", b'{"tasks": 5}', b'{"tasks": "abc"}'])
def test_a_task_listing_that_is_not_a_page_of_tasks_is_refused_not_a_crash(server, client, body):
    """The SDK's TypeError or AttributeError escaped: a traceback on every pass, and no task synced."""
    server.routes[TASKS] = Reply(body=body, headers=JSON)
    with pytest.raises(LabelStudioRejected, match="task listing of project 7"):
        list(client.iter_tasks(P, page_size=100))


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic, dumping the SDK's model of the odd field
def test_a_listed_task_whose_data_is_not_an_object_is_skipped(server, client):
    """Accepted by the sync (the webhook path refuses it), it failed to embed with a traceback, and stayed
    failed after Label Studio served proper data."""
    server.routes[TASKS] = pages([task(1), {"id": 2, "data": "an image", "annotations": []}, task(3)])
    assert [t["id"] for t in client.iter_tasks(P, page_size=100)] == [1, 3]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_annotations_not_given_as_a_list_of_objects_are_marked_unlisted(server, client):
    server.routes[TASKS] = pages([{"id": 1, "data": {}}, {"id": 2, "data": {}, "annotations": None},
                                  task(3, [{"id": 5}, "x"]), task(4, [{"id": 6}])])
    listed = {t["id"]: (t["annotations"], t["annotations_listed"]) for t in client.iter_tasks(P, page_size=100)}
    assert listed == {1: ([], False), 2: ([], False), 3: ([{"id": 5}], False), 4: ([{"id": 6}], True)}


def test_a_retry_after_of_digits_that_are_not_ascii_is_ignored(server, client):
    """"²".isdigit() is True but float("²") raises: a ValueError with a traceback on every pass."""
    server.routes[f"/api/projects/{P}/"] = busy("\u00b2", PROJECT)
    assert client.counts(P).tasks == 3


def test_odd_records_in_anyones_webhooks_or_connections_are_skipped(server, client):
    """One hook or connection that could not be read (an id that is not a number, actions that are not a
    list, an unparsable URL), someone else's included, failed the audit that opens every sync."""
    ours = {"id": 41, "url": "http://backend:9090/webhook", "actions": [], "send_for_all_actions": True,
            "send_payload": True, "is_active": True, "headers": {}, "project": P}
    odd = [dict(ours, id=None), dict(ours, id=42, actions=5), dict(ours, id=43, url="http://[::1/webhook")]
    server.routes["/api/webhooks/"] = Reply(body=json.dumps(odd + [ours]).encode(), headers=JSON)
    assert [h.id for h in client.ensure_webhook(P, ["http://backend:9090"])] == [41]
    connections = [{"id": "x", "url": "http://backend:9090"}, {"id": 3, "url": "http://[::1"},
                   {"id": 4, "url": "http://backend:9090"}]
    server.routes["/api/ml/"] = Reply(body=json.dumps(connections).encode(), headers=JSON)
    assert [c.id for c in client.ml_connections(P)] == [3, 4]


@pytest.mark.parametrize("body", [b"{}", b'{"id": null}', b'{"id": "7a"}'])
def test_a_view_created_without_a_usable_id_is_a_refusal(server, client, body):
    """int(view.id) raised TypeError: not a refusal, so the predictions were held back too, and every retry
    created one more tab. Now the push goes on with the predictions (test_worker: a refused view)."""
    server.routes[COLUMNS] = Reply(body=b'{"columns": []}', headers=JSON)
    server.routes["POST /api/dm/views/"] = Reply(status=201, body=body, headers=JSON)
    with pytest.raises(LabelStudioRejected, match="no usable id"):
        client.push_view(P, "Next batch", [1, 2], None)


@pytest.mark.parametrize("refusal", [Reply(status=400, body=b'{"detail": "bad filter"}', headers=JSON),
                                     Reply(status=200, body=b"<html>proxy</html>", headers={"Content-Type": "text/html"})],
                         ids=["400", "html"])
def test_a_view_update_refused_is_not_taken_for_a_deleted_view(server, client, refusal):
    """Every refusal of the view's update was read as "the view is gone": each push then made one more
    next-batch tab and left the old one. Only a 404 says the view is gone."""
    server.routes[COLUMNS] = Reply(body=b'{"columns": []}', headers=JSON)
    server.routes["PATCH /api/dm/views/5/"] = refusal
    server.routes["POST /api/dm/views/"] = Reply(status=201, body=b'{"id": 6}', headers=JSON)
    with pytest.raises(LabelStudioRejected):
        client.push_view(P, "Next batch", [1, 2], 5)
    assert "POST /api/dm/views/" not in [path for path, _ in server.requests]

    server.routes["PATCH /api/dm/views/5/"] = Reply(status=404, body=b'{"detail": "Not found."}', headers=JSON)
    assert client.push_view(P, "Next batch", [1, 2], 5) == 6


@pytest.mark.parametrize("route, call", [("/api/webhooks/", lambda c: c.ensure_webhook(P, ["http://backend:9090"])),
                                         ("/api/ml/", lambda c: c.ml_connections(P))], ids=["webhooks", "ml"])
def test_a_webhook_or_connection_listing_the_sdk_cannot_read_is_a_refusal(server, client, route, call):
    """Entries that are not objects made the SDK's model raise TypeError past every handler: a traceback each
    sync. A refusal with the reason instead (the sync runs again later); no webhook is made meanwhile."""
    server.routes[route] = Reply(body=b'["a", "b"]', headers=JSON)
    with pytest.raises(LabelStudioRejected, match="listing of project 7 cannot be read"):
        call(client)
    assert "POST /api/webhooks/" not in [path for path, _ in server.requests]


def test_a_next_batch_tab_label_studio_already_holds_is_taken_over_not_doubled(server, client):
    """A create whose answer was lost (or a MODEL_DIR lost or restored) left the backend without the view's
    id: the next push made a second "Next batch (ML)" tab (fuzz pass 4, 2026-12-02). An admin's own tab is
    left alone."""
    ours = {"id": 12, "project": P, "data": {"title": "Next batch", "ordering": ["-tasks:predictions_score"],
                                               "filters": {"conjunction": "or", "items": [
                                                   {"filter": "filter:tasks:id", "operator": "equal", "type": "Number",
                                                    "value": 3}]}}}
    admins = {"id": 5, "project": P, "data": {"title": "Mine", "ordering": ["-tasks:predictions_score"],
                                              "filters": {"conjunction": "and", "items": []}}}
    server.routes[COLUMNS] = Reply(body=b'{"columns": []}', headers=JSON)
    server.routes["/api/dm/views/"] = Reply(body=json.dumps([admins, ours]).encode(), headers=JSON)
    server.routes["PATCH /api/dm/views/12/"] = Reply(body=json.dumps(ours).encode(), headers=JSON)
    assert client.push_view(P, "Next batch", [1, 2], None) == 12
    assert "POST /api/dm/views/" not in [path for path, _ in server.requests]

    server.routes["/api/dm/views/"] = Reply(body=json.dumps([admins]).encode(), headers=JSON)
    server.routes["POST /api/dm/views/"] = Reply(status=201, body=b'{"id": 13}', headers=JSON)
    assert client.push_view(P, "Next batch", [1, 2], None) == 13


def test_the_model_versions_are_read_as_names_and_counts(server, client):
    server.routes[f"/api/projects/{P}/model-versions/"] = Reply(
        body=b'{"clip-head-v5": 12, "other": 3, "odd": "many"}', headers=JSON)
    assert client.model_versions(P) == {"clip-head-v5": 12, "other": 3}
    server.routes[f"/api/projects/{P}/model-versions/"] = Reply(body=b'["clip-head-v5"]', headers=JSON)
    with pytest.raises(LabelStudioRejected, match="not as versions and counts"):
        client.model_versions(P)


def test_a_create_whose_answer_never_came_is_not_sent_again_within_the_call(server):
    """A read timeout after Label Studio stored a chunk of predictions (or a view) made the call's own retries
    send it again: tasks with two predictions of one version, two tabs (fuzz pass 4, 2026-12-02). The worker
    settles such a chunk instead (test_worker); a read, sent again, is harmless and still retried."""
    client = LabelStudioClient(server.origin, api_key="0123456789abcdef0123456789abcdef01234567", timeout_s=0.5)
    server.routes[f"POST /api/projects/{P}/import/predictions"] = Reply(status=201, body=b"{}", headers=JSON,
                                                                        delay_s=2.0)
    with pytest.raises(LabelStudioUnavailable):
        client.push_predictions(P, [{"task": 1, "result": [], "score": 0.5, "model_version": "clip-head-v1"}])
    assert [path for path, _ in server.requests].count(f"POST /api/projects/{P}/import/predictions") == 1
    server.routes[f"/api/projects/{P}/"] = Reply(body=b'{"id": 7, "task_number": 3}', headers=JSON, delay_s=2.0)
    with pytest.raises(LabelStudioUnavailable):
        client.counts(P)
    assert [path for path, _ in server.requests].count(f"/api/projects/{P}/") == 3
