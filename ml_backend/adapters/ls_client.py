"""Everything the service asks of Label Studio, through `label-studio-sdk` (pinned).

The SDK is imported here and in `ls_admin` only, so an SDK upgrade touches two files
and the e2e tests. Calls are retried briefly on transport errors, 5xx and 429; a longer
outage surfaces as `LabelStudioUnavailable`, which the worker retries with backoff. A
Retry-After is obeyed: a short one within the call, a longer one by the worker.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, TypeVar

import httpcore
import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from tenacity import RetryCallState, retry, retry_if_exception, stop_after_attempt, wait_exponential

from ..core.errors import RemoteRejected, RemoteUnavailable
from .ls_gateway import ProjectCounts
from .ls_payloads import is_id
from .ls_views import batch_view, hidden_columns, is_batch_view
from .ml_connections import WEBHOOK_ACTIONS, Connection, Hook, hooks_to, parsed_records, webhook_url

log = logging.getLogger(__name__)

T = TypeVar("T")
# How long Label Studio may take, after the /setup that connects a backend, to add its own webhook.
HOOK_SETTLE_S = 2.0
# A whole answer (status line, headers, body) must arrive within this many times the timeout per read:
# the worker is one thread for every project, and an answer dripping a byte per read would otherwise
# hold them all.
ANSWER_DEADLINE_READS = 4
# A Retry-After up to this long is waited out within the call; a longer one ends the call, and the
# worker waits it out (worker.RETRY_AFTER_MAX_S) without holding the other projects.
IN_CALL_RETRY_AFTER_MAX_S = 2.0


class LabelStudioUnavailable(RemoteUnavailable):
    """Label Studio did not answer, or answered 5xx."""

    code = "label_studio_unavailable"


class LabelStudioRejected(RemoteRejected):
    """Label Studio answered 4xx: a request this backend should not have made as it did."""

    code = "label_studio_rejected"


_answer = threading.local()  # .deadline: when the answer being read on this thread must be in (monotonic)


@contextmanager
def _answer_deadline(deadline: float) -> Iterator[None]:
    earlier = getattr(_answer, "deadline", None)
    _answer.deadline = deadline
    try:
        yield
    finally:
        _answer.deadline = earlier


class _DeadlineNetworkStream(httpcore.NetworkStream):
    """A connection whose every read gets at most the time left to the answer's deadline."""

    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        deadline = getattr(_answer, "deadline", None)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ReadTimeout("Label Studio's answer did not arrive in time")
            timeout = left if timeout is None else min(timeout, left)
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineNetworkStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's network backend, its connections wrapped in `_DeadlineNetworkStream`."""

    def __init__(self, inner: httpcore.NetworkBackend):
        self._inner = inner

    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _DeadlineNetworkStream(self._inner.connect_tcp(*args, **kwargs))

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _DeadlineNetworkStream(self._inner.connect_unix_socket(*args, **kwargs))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineBody(httpx.SyncByteStream):
    """A response body read under its answer's deadline."""

    def __init__(self, inner: httpx.SyncByteStream, deadline: float):
        self._inner, self._deadline = inner, deadline

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._inner)
        while True:
            with _answer_deadline(self._deadline):  # per chunk: the caller runs unbounded between them
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        self._inner.close()


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport, plus one deadline for each whole answer: status line, headers and body.
    httpx times each read on its own, so an answer dripped a byte per read would hold the call
    as long as it lasted; here every read gets at most the time left."""

    def __init__(self, answer_deadline_s: float, **kwargs: Any):
        super().__init__(**kwargs)
        # httpx 0.28 passes no network backend through to its pool: wrap the one the pool made.
        pool = self._pool
        if not isinstance(getattr(pool, "_network_backend", None), httpcore.NetworkBackend):
            raise RuntimeError("httpcore's ConnectionPool changed: cannot bound Label Studio's answers")
        pool._network_backend = _DeadlineBackend(pool._network_backend)
        self._answer_deadline_s = answer_deadline_s

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + self._answer_deadline_s
        with _answer_deadline(deadline):
            response = super().handle_request(request)
        response.stream = _DeadlineBody(response.stream, deadline)
        return response


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status >= 500 or status == 429)


def retry_after_s(exc: BaseException | None) -> float | None:
    """Seconds an answer's Retry-After header asks to wait (delay-seconds or an HTTP date), or None."""
    headers = getattr(exc, "headers", None)
    if not isinstance(headers, dict):
        return None
    value = next((str(v).strip() for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    if not value:
        return None
    if value.isascii() and value.isdigit():  # str.isdigit() also takes "²", which float() refuses
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    when = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _worth_retrying_now(exc: BaseException) -> bool:
    return _transient(exc) and (retry_after_s(exc) or 0.0) <= IN_CALL_RETRY_AFTER_MAX_S


# Failures that leave a request unsent: only after these may a call that creates something be sent again
# at once. After a read timeout or a dropped connection Label Studio may have created it already (a chunk of
# predictions sent twice gave its tasks two predictions of one version): the worker settles that instead.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _worth_creating_again_now(exc: BaseException) -> bool:
    unsent_or_refused = not isinstance(exc, httpx.TransportError) or isinstance(exc, NOT_SENT)
    return unsent_or_refused and _worth_retrying_now(exc)


_backoff = wait_exponential(multiplier=0.2, max=2.0)


def _wait(state: RetryCallState) -> float:
    """Label Studio's Retry-After when it gave one (at most IN_CALL_RETRY_AFTER_MAX_S here), else a short backoff."""
    asked = retry_after_s(state.outcome.exception() if state.outcome else None)
    return asked if asked is not None else _backoff(state)


class LabelStudioClient:
    """The real `ls_gateway.LabelStudioGateway`: the worker's calls through the SDK, plus the
    token checks /setup needs. Thread-safe."""

    def __init__(self, url: str, api_key: str | None, timeout_s: float = 15.0,
                 webhook_headers: dict[str, str] | None = None):
        self.url = url.rstrip("/")
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._client: LabelStudio | None = None
        self._http: httpx.Client | None = None  # the SDK client's connections (built with it)
        self._api_key = api_key
        # Headers Label Studio must send with webhooks (the backend's basic auth, when set).
        self._webhook_headers = dict(webhook_headers or {})
        self._hidden_columns: dict[int, dict[str, list[str]]] = {}  # project -> the batch view's hidden columns
        self._created_hooks: dict[int, int] = {}  # project -> the id of the webhook made here

    @property
    def has_credentials(self) -> bool:
        return bool(self._api_key)

    def set_credentials(self, api_key: str) -> None:
        with self._lock:
            self._api_key, self._client = api_key, None

    def uses_key(self, api_key: str) -> bool:
        return self._api_key == api_key

    def verify_key(self, api_key: str) -> bool:
        """Whether Label Studio accepts `api_key` (legacy token or personal access token).

        Raises `LabelStudioUnavailable` when Label Studio cannot say.
        """
        # One attempt, no retries: this runs inside a /setup request.
        http = self._http_client()
        try:
            LabelStudio(base_url=self.url, api_key=api_key, httpx_client=http, max_retries=0).users.whoami()
            return True
        except ApiError as exc:
            if exc.status_code in (401, 403):
                return False
            raise LabelStudioUnavailable(f"Label Studio answered {exc.status_code} checking a token") from None
        except httpx.HTTPError as exc:
            raise LabelStudioUnavailable(f"cannot reach Label Studio at {self.url}: {type(exc).__name__}") from None
        finally:
            http.close()

    def project_exists(self, project: int) -> bool:
        """Whether Label Studio has this project (as the backend's credentials see it)."""
        return self._exists(lambda: self.client.projects.get(id=project))

    @property
    def client(self) -> LabelStudio:
        with self._lock:
            if self._client is None:
                if not self._api_key:
                    raise LabelStudioUnavailable("no Label Studio API key: set LABEL_STUDIO_API_KEY")
                self._http = self._http_client()
                self._client = LabelStudio(base_url=self.url, api_key=self._api_key, httpx_client=self._http,
                                           max_retries=0)
            return self._client

    def _http_client(self) -> httpx.Client:
        # A short connect timeout: Label Studio is near, and an unreachable one should fail fast
        # (the worker retries with backoff) rather than hold a pass for long.
        return httpx.Client(timeout=httpx.Timeout(self._timeout_s, connect=min(self._timeout_s, 3.0)),
                            transport=_DeadlineTransport(ANSWER_DEADLINE_READS * self._timeout_s))

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a plain HTTP request to Label Studio (e.g. for /data/upload files).

        The SDK turns a personal access token into a short-lived access token and refreshes it.
        """
        if not self._api_key:
            return {}
        headers = self._call(lambda: self.client._client_wrapper.get_headers())
        return {"Authorization": headers["Authorization"]}

    # -- the worker's calls --------------------------------------------------
    def ml_connections(self, project: int) -> list[Connection]:
        """The project's ML connections (listing them makes Label Studio call each one's /setup)."""
        listing = self._listing(lambda: self.client.ml.list(project=project), f"ML connection listing of project {project}")
        return parsed_records(listing, Connection.of, "ML connection")

    def ensure_webhook(self, project: int, backend_urls: list[str]) -> list[Hook]:
        """Make sure the events the backend needs (`WEBHOOK_ACTIONS`) reach it, known by any of `backend_urls`;
        returns its hooks.

        Connecting a backend already creates a webhook for all actions; a second hook to the same
        backend would deliver every event twice, so one is added only for the actions no hook to any
        spelling of its URL covers (the admin may have deleted Label Studio's: then ratings and
        imports would stop arriving). Hooks the admin made are never edited.
        """
        if not backend_urls:
            log.warning("project %s: no ML connection leads to this backend and BACKEND_URL is unset: "
                        "not registering a webhook", project)
            return []
        hooks = self._hooks_to(project, backend_urls)
        missing = [action for action in WEBHOOK_ACTIONS if not any(h.covers(action) for h in hooks)]
        if not missing:
            return hooks
        made = self._created_hooks.get(project)
        if made is not None and self._hook_exists(made):
            # A listing that leaves out a hook that exists (a proxy, a permission) made every sync add one more.
            log.warning("project %s: Label Studio's webhook listing lacks hook %s, which exists: not adding another",
                        project, made)
            return hooks
        target = webhook_url(backend_urls[0])
        created = self._call(lambda: self.client.webhooks.create(
            url=target, project=project, actions=missing, send_payload=True, send_for_all_actions=False,
            **({"headers": self._webhook_headers} if self._webhook_headers else {}),
        ), creates=True)
        created_id = _created_id(created, f"the webhook of project {project}")
        log.info("project %s: no webhook sent %s to this backend: registered one to %s", project,
                 ", ".join(missing), target)
        # Label Studio adds its own all-actions hook just after the /setup that connects a
        # backend, and may have done so since the listing above: then keep only its hook
        # (two would deliver every event twice), with our headers.
        time.sleep(HOOK_SETTLE_S)
        others = [h for h in self._hooks_to(project, backend_urls) if h.id != created_id]
        if any(h.all_actions and h.active for h in others):
            self._call(lambda: self.client.webhooks.delete(created_id))
            log.info("project %s: Label Studio's own webhook covers every event: removed ours", project)
            return others
        self._created_hooks[project] = created_id
        return others + [Hook.of(created)]

    def _hook_exists(self, hook_id: int) -> bool:
        return self._exists(lambda: self.client.webhooks.get(id=hook_id))

    def _hooks_to(self, project: int, backend_urls: list[str]) -> list[Hook]:
        """The project's webhooks to this backend, each made to carry our headers."""
        listing = self._listing(lambda: self.client.webhooks.list(project=str(project)),
                                f"webhook listing of project {project}")
        listed = parsed_records(listing, Hook.of, "webhook")
        hooks = hooks_to(backend_urls, listed)
        for hook in hooks:
            self._ensure_webhook_headers(project, hook)
        return hooks

    def _ensure_webhook_headers(self, project: int, hook: Hook) -> None:
        """With basic auth on, the backend refuses webhooks without it; Label Studio's
        auto-created hook sends none, so add the header to every hook to this backend."""
        have = dict(hook.headers)
        if not self._webhook_headers or all(have.get(k) == v for k, v in self._webhook_headers.items()):
            return
        # Label Studio's update replaces the action list too: send it back as it was.
        self._call(lambda: self.client.webhooks.update(
            hook.id, url=hook.url, headers={**have, **self._webhook_headers}, actions=list(hook.actions),
            send_for_all_actions=hook.all_actions))
        log.info("project %s: webhook %s now sends the backend's basic auth", project, hook.id)

    def iter_tasks(self, project: int, page_size: int = 500) -> Iterator[dict[str, Any]]:
        """Every task of the project as {"id", "data", "annotations": [dict, ...], "annotations_listed", "created_at"},
        each once.

        Pages are read until one comes back empty or 404 ("Invalid page", one past the end),
        not until a short one: Label Studio may serve fewer than asked (TASK_API_PAGE_SIZE_MAX).
        Any other refusal of a later page, or a page that lists no task not listed before (a
        server ignoring `page`), raises: a cut-off listing must not pass for the whole project.
        An entry without a valid id or whose data is not an object is skipped with a warning (the
        listing then falls short of the task count (`counts`), which the caller checks before deleting anything).
        "annotations_listed" is False when the entry does not give its annotations as a list of objects
        (missing, null, or with other entries): "annotations" then holds what could be read, and the
        rest is unknown, which is not the same as none.
        """
        page, listed = 1, set()
        while True:
            try:
                # resolve_uri=False: task data as stored, in the form webhooks carry it. Resolved, a cloud-storage
                # reference becomes a link on Label Studio's own HOSTNAME, which the backend may not reach.
                listing = self._listing(lambda: self.client.tasks.list(
                    project=project, fields="all", page=page, page_size=page_size, resolve_uri=False),
                    f"task listing of project {project} at page {page}")
            except LabelStudioRejected as exc:
                if page > 1 and exc.status_code == 404:
                    return
                raise
            items = getattr(listing, "items", None) or []
            if not isinstance(items, list):
                raise LabelStudioRejected(f"Label Studio's task listing of project {project} is not a list of tasks "
                                          f"at page {page}")
            if not items:
                return
            new = 0
            for task in items:
                record = _as_dict(task)
                task_id = record.get("id")
                if not is_id(task_id):
                    log.warning("project %s: skipping a listed task with id %r", project, str(task_id)[:40])
                    continue
                data = record.get("data") or {}
                if not isinstance(data, dict):
                    log.warning("project %s: skipping listed task %s: its data is not an object", project, task_id)
                    continue
                if task_id in listed:
                    continue
                listed.add(task_id)
                new += 1
                listed_annotations = record.get("annotations")
                annotations = ([a for a in listed_annotations if isinstance(a, dict)]
                               if isinstance(listed_annotations, list) else [])
                created_at = record.get("created_at")
                yield {"id": task_id, "data": data, "annotations": annotations,
                       "annotations_listed": isinstance(listed_annotations, list)
                       and len(annotations) == len(listed_annotations),
                       "created_at": str(created_at) if created_at is not None else None}
            if not new:
                raise LabelStudioRejected(f"Label Studio's task listing of project {project} gave no new task at page "
                                          f"{page} (a page repeated, or entries without a valid id): not trusted as complete")
            page += 1

    def counts(self, project: int) -> ProjectCounts:
        """How many tasks and annotations (skips included) the project has, from its record (one cheap
        call). A count the answer does not give, or not as a count, is None: taken as 0, a missing task
        count made every check resync and every sync fail."""
        record = self._call(lambda: self.client.projects.get(id=project))

        def count(*fields: str) -> int | None:
            numbers = [getattr(record, field, None) for field in fields]
            valid = all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers)
            return sum(numbers) if valid else None

        # total_annotations_number leaves the skipped ones out
        return ProjectCounts(tasks=count("task_number"),
                             annotations=count("total_annotations_number", "skipped_annotations_number"))

    def model_versions(self, project: int) -> dict[str, int]:
        """The model versions the project's predictions carry, with how many each (entries that are not a
        name and a count are left out)."""
        answer = self._call(lambda: self._plain_request("GET", f"/api/projects/{project}/model-versions/"))
        try:
            listed = answer.json()
        except ValueError:
            listed = None
        if not isinstance(listed, dict):
            raise LabelStudioRejected(f"Label Studio listed the model versions of project {project} as "
                                      f"{str(listed)[:80]!r}, not as versions and counts", 502)
        return {name: count for name, count in listed.items() if isinstance(count, int) and not isinstance(count, bool)}

    def push_predictions(self, project: int, predictions: list[dict[str, Any]]) -> None:
        """Create predictions ({"task", "result", "score", "model_version"}) in one call."""
        if predictions:
            self._call(lambda: self.client.projects.import_predictions(id=project, request=predictions), creates=True)

    def set_model_version(self, project: int, model_version: str) -> None:
        """Make `model_version` the project's: the Data Manager shows and sorts by its scores.

        Label Studio accepts only a version that predictions already carry.
        """
        self._call(lambda: self.client.projects.update(id=project, model_version=model_version))

    def delete_model_version(self, project: int, model_version: str) -> None:
        """Delete all predictions of an old version (no SDK wrapper for this endpoint)."""
        self._call(lambda: self._plain_request(
            "DELETE", f"/api/projects/{project}/model-versions/", json={"model_version": model_version}))

    def push_view(self, project: int, title: str, task_ids: list[int], view_id: int | None) -> int:
        """Point the next-batch tab at `task_ids`, ordered by score; returns the view id."""
        data = batch_view(title, task_ids, self._batch_hidden_columns(project))
        if view_id is not None:
            try:
                self._call(lambda: self.client.views.update(id=str(view_id), project=project, data=data))
                return view_id
            except LabelStudioRejected as exc:
                if exc.status_code != 404:
                    raise  # refused, not gone: a new tab each push would pile up beside the old one
                log.info("project %s: view %s is gone, creating a new one", project, view_id)
        # A tab this backend made but does not know of (a create whose answer was lost, a MODEL_DIR lost or
        # restored): taken over, not doubled.
        existing = self._our_view(project)
        if existing is not None:
            log.info("project %s: taking over the next-batch view %s found in Label Studio", project, existing)
            self._call(lambda: self.client.views.update(id=str(existing), project=project, data=data))
            return existing
        view = self._call(lambda: self.client.views.create(project=project, data=data), creates=True)
        return _created_id(view, f"the next-batch view of project {project}")

    def _our_view(self, project: int) -> int | None:
        """The oldest of the project's views built as `ls_views.batch_view` builds them, if any."""
        try:
            views = self._call(lambda: self.client.views.list(project=project))
        except LabelStudioRejected as exc:  # the tab is still needed: made anew
            log.warning("project %s: cannot list the Data Manager views (%s)", project, exc)
            return None
        ids = [view.id for view in views or [] if is_id(getattr(view, "id", None))
               and is_batch_view(getattr(view, "data", None))]
        return min(ids) if ids else None

    def _batch_hidden_columns(self, project: int) -> dict[str, list[str]] | None:
        """The batch view's hidden columns, from the project's column listing (read once per project).

        None when Label Studio does not list them: the view then keeps its default columns.
        """
        if project not in self._hidden_columns:
            try:
                listing = self._call(lambda: self._plain_request("GET", "/api/dm/columns/", params={"project": project}))
                body = listing.json()
                columns = body.get("columns") if isinstance(body, dict) else None
                if not isinstance(columns, list) or not any(isinstance(c, dict) for c in columns):
                    raise ValueError(f"no list of columns in {str(body)[:80]!r}")
                self._hidden_columns[project] = hidden_columns(columns)
            except (LabelStudioRejected, ValueError) as exc:
                log.warning("project %s: cannot read the Data Manager columns (%s): the score column stays hidden", project, exc)
                return None
        return self._hidden_columns[project]

    # -- plumbing ------------------------------------------------------------
    def _plain_request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An API call the SDK has no wrapper for, on the SDK's connections (same timeouts, redirects
        not followed); 4xx/5xx raise ApiError, as SDK calls do."""
        self.client  # noqa: B018 - builds the connections (and refuses without an API key)
        response = self._http.request(method, f"{self.url}{path}", headers=self.auth_headers(), **kwargs)
        if response.status_code >= 400:
            raise ApiError(status_code=response.status_code, headers=dict(response.headers), body=response.text[:200])
        return response

    def _listing(self, fetch: Callable[[], T], what: str) -> T:
        """`_call` of a listing, where an answer the SDK cannot read as one (a body of the wrong shape makes
        its model raise) is a refusal with that reason, not an exception past every handler."""
        try:
            return self._call(fetch)
        except (AttributeError, TypeError, ValueError) as exc:
            raise LabelStudioRejected(f"Label Studio's {what} cannot be read ({type(exc).__name__})") from None

    def _exists(self, fetch: Callable[[], Any]) -> bool:
        """True when `fetch` (a GET of one record) succeeds, False when Label Studio answers 404."""
        try:
            self._call(fetch)
            return True
        except LabelStudioRejected as exc:
            if exc.status_code == 404:
                return False
            raise

    def _call(self, fn: Callable[[], T], creates: bool = False) -> T:
        """`fn` (one API call), retried at once on transient failures (fewer for one that `creates`); its
        failures as LabelStudioUnavailable or LabelStudioRejected."""
        try:
            return self._retrying_create(fn) if creates else self._retrying(fn)
        except ApiError as exc:
            if _transient(exc):
                wait = retry_after_s(exc)
                asks = f", asking to retry after {wait:.0f} s" if wait is not None else ""
                raise LabelStudioUnavailable(f"Label Studio answered {exc.status_code}{asks}", retry_after_s=wait) from None
            raise LabelStudioRejected(f"Label Studio answered {exc.status_code}: {str(exc.body)[:200]}",
                                      exc.status_code) from None
        except httpx.TransportError as exc:
            raise LabelStudioUnavailable(f"cannot reach Label Studio at {self.url}: {type(exc).__name__}") from None

    @retry(retry=retry_if_exception(_worth_retrying_now), stop=stop_after_attempt(3), wait=_wait, reraise=True)
    def _retrying(self, fn: Callable[[], T]) -> T:
        return fn()

    @retry(retry=retry_if_exception(_worth_creating_again_now), stop=stop_after_attempt(3), wait=_wait, reraise=True)
    def _retrying_create(self, fn: Callable[[], T]) -> T:
        return fn()


def _created_id(record: Any, what: str) -> int:
    """The id Label Studio gave a record it created. Without a usable one the call counts as refused
    (a view's predictions then still go out), not as a crash that retries, creating one more each time."""
    created = getattr(record, "id", None)
    if not is_id(created):
        raise LabelStudioRejected(f"Label Studio created {what} but gave no usable id ({str(created)[:40]!r})")
    return created


def _as_dict(model: Any) -> dict[str, Any]:
    """A listed record as a dict; {} for one that is neither a dict nor a model (no id: skipped)."""
    if isinstance(model, dict):
        return model
    if hasattr(model, "model_dump"):
        return model.model_dump()
    return model.dict() if hasattr(model, "dict") else {}
