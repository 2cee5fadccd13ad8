"""The ML-backend HTTP protocol Label Studio speaks, plus a few admin endpoints.

Label Studio's routes: GET /health, POST /setup, POST /predict, POST /webhook,
POST /train. Ours: GET /projects/<id>/status, GET /projects/<id>/evaluation (JSON) and
GET /projects/<id>/evaluation/page (HTML), POST /projects/<id>/next-batch,
POST /projects/<id>/reset-seen, POST /projects/<id>/retry-failed. Each route parses
the request, calls the loop or the worker, and serialises the answer; errors become
short JSON bodies.
"""

from __future__ import annotations

import hmac
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import IntegerConverter

from ..adapters import ls_payloads
from ..adapters.ls_predictions import predictions_for
from ..adapters.ls_records import version_name
from ..core.errors import BackendError, BadRequestError, ConfigError, UnknownProjectError
from .evaluation_page import render_page
from .limits import WaitSlots, wait_slots
from .redaction import redactor
from .runtime import Runtime
from .settings import ServiceSettings

log = logging.getLogger(__name__)
# One line per request, with its duration in seconds (Label Studio gives a webhook 1 s); shown at any LOG_LEVEL.
access_log = logging.getLogger("ml_backend.access")
access_log.setLevel(logging.INFO)

MODEL_CLASS = "ClipVectorQueue"
ANNOTATION_ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED"}
# Label Studio's action names (about 20) look like this; the status lists the latest this many per project,
# so that made-up actions cannot grow memory or the status answer without bound.
WEBHOOK_ACTION = re.compile(r"[A-Z][A-Z_]{0,63}")
ACTIONS_KEPT = 64
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
NEXT_BATCH_WAIT_S = 30.0
# How long the worker leaves Label Studio alone after a /setup that gives it work: the request that
# called /setup (an admin editing or deleting a connection) commits within it.
SETUP_SETTLE_S = 2.0


def create_app(settings: ServiceSettings | None = None, runtime: Runtime | None = None) -> Flask:
    """Build the app. The runtime (ledger, stores, worker; embedding models load on first use) is built
    once here, not per request."""
    settings = settings or ServiceSettings.from_env()
    runtime = runtime or Runtime.build(settings)
    app = Flask(__name__)
    app.url_map.converters["int"] = AsciiIntConverter  # before the routes: they read project ids with it
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    redactor.add_secrets([settings.api_key, settings.basic_auth_password or None])
    redactor.install()
    app.extensions["runtime"] = runtime
    projects, worker, facts, records = runtime.projects, runtime.worker, runtime.facts, runtime.records
    last_webhooks = LatestWebhooks()
    # Requests that may block a server thread for long are bounded, so webhooks always find one.
    admin_waits = WaitSlots(wait_slots(settings.threads))
    predict_embeds = WaitSlots(wait_slots(settings.threads))

    def redacted_worker_status(project: int) -> dict[str, Any]:
        """The worker's state for an answer. Its last error is exception text from libraries, which may
        quote what Label Studio sent back: scrubbed like a log line."""
        state = worker.status(project)
        if state.get("last_error"):
            state["last_error"] = redactor.redact(state["last_error"])
        return state

    @app.before_request
    def note_start() -> None:
        request.environ["backend.started"] = time.perf_counter()

    @app.after_request
    def log_access(response: Response) -> Response:
        duration = time.perf_counter() - request.environ.get("backend.started", time.perf_counter())
        line = f"{request.method} {request.full_path.rstrip('?')} {request.environ.get('SERVER_PROTOCOL', 'HTTP/1.1')}"
        access_log.info('%s "%s" %s %s "%s" %.6f', request.remote_addr, _loggable(line), response.status_code,
                        response.content_length or "-", _loggable(request.user_agent.string), duration)
        return response

    @app.before_request
    def require_basic_auth() -> Response | None:
        if not settings.basic_auth_user or request.path == "/health":
            return None
        auth = request.authorization
        expected_pass = settings.basic_auth_password
        if (
            auth is not None and auth.type == "basic"
            and hmac.compare_digest((auth.username or "").encode(), settings.basic_auth_user.encode())
            and hmac.compare_digest((auth.password or "").encode(), expected_pass.encode())
        ):
            return None
        response = jsonify(error="unauthorized", message="basic auth required")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Basic realm="ml-backend"'
        return response

    @app.get("/health")
    def health() -> Response | tuple[Response, int]:
        models = runtime.embedders.describe()
        body = dict(
            status="UP", model_class=MODEL_CLASS, embedding_model=models["image"]["model"],
            embedding_models=models, random_test_model=any(m["random_test_model"] for m in models.values()),
            project_errors={str(p): e for p, e in projects.errors.items()}, instance_id=runtime.identity.instance_id,
        )
        if projects.ledger.corruption:  # nothing can be served or recorded: not UP
            return jsonify(**{**body, "status": "ERROR", "ledger_error": projects.ledger.corruption}), 503
        storage_problem = runtime.storage.problem()
        if storage_problem:  # a full disk or a ledger deleted under us: what arrives now may be lost
            return jsonify(**{**body, "status": "ERROR", "storage_error": storage_problem}), 503
        return jsonify(**body, project_warnings=projects.warnings())

    @app.post("/setup")
    def setup() -> Response:
        body = _json_body()
        project = ls_payloads.project_id(body.get("project"))
        # Only a token Label Studio accepts is used (and learnt by the log redactor).
        runtime.adopt_setup_token(body.get("access_token"))
        if not projects.is_known(project):
            runtime.confirm_project(project)
        # Label Studio calls /setup before every prediction and listing: only a change is work.
        extra_params, recheck_connections = projects.params_from_setup(project, body.get("extra_params"))
        loop, changed = projects.configure(project, label_config=ls_payloads.label_config(body.get("schema")),
                                           extra_params=extra_params)
        if changed or recheck_connections:
            # Label Studio saves (or deletes) the connection after our answer; listing connections
            # meanwhile makes it save its stale copy again: the admin's edit lost, a deleted one back.
            worker.notify(project, sync=changed, check_connections=recheck_connections, settle_s=SETUP_SETTLE_S)
        # Label Studio reads model_version only; the warnings are for admins calling /setup themselves.
        warnings = projects.settings_warnings(project)
        return jsonify(model_version=version_name(loop.head_version()), **({"warnings": warnings} if warnings else {}))

    @app.post("/predict")
    def predict() -> Response:
        body = _json_body()
        project = ls_payloads.project_id(body.get("project"))
        tasks = ls_payloads.tasks_from(body.get("tasks"))
        projects.observe(project, _observed_label_config(project, body.get("label_config")))
        loop, schema = projects.get_with_schema(project)
        task_ids = [t for t, _ in tasks]
        new_tasks = facts.add_tasks(project, [(t, data) for t, data in tasks if t not in loop.store])
        with predict_embeds.slot() as may_embed:
            if may_embed:
                loop.ensure_embedded(task_ids)
            elif new_tasks:
                worker.notify(project)  # busy: answer with what is embedded; the worker embeds the rest
        predictions = predictions_for(loop, schema.scale, task_ids)
        if predictions.by_task:
            # Label Studio stores what we return: the worker need not push these again.
            records.mark_predicted(project, list(predictions.by_task), predictions.version)
            records.note_version_pushed(project, predictions.version)
        return jsonify(results=predictions.answer(task_ids), model_version=predictions.model_version)

    @app.post("/webhook")
    def webhook() -> tuple[Response, int]:
        # Label Studio waits at most 1 s and never retries: this path only records facts
        # in the ledger and wakes the worker. It never builds a loop, embeds or refits.
        received_at = time.time()
        body = _json_body()
        action = body.get("action")
        if not isinstance(action, str):
            raise BadRequestError("webhook body has no 'action'")
        if "project" not in body:
            return jsonify(status="ignored", reason="no project in payload"), 200
        ledger_gone = runtime.storage.ledger_gone()
        if ledger_gone:  # recorded now, lost at the next start: say so in Label Studio's webhook log instead
            return jsonify(status="ERROR", storage_error=ledger_gone), 503
        project = ls_payloads.project_id(body["project"])
        project_info = body["project"] if isinstance(body["project"], dict) else {}
        # A project never set up is refused here, before anything about it is kept.
        reconfigured = projects.observe(project, _observed_label_config(project, project_info.get("label_config")))
        last_webhooks.note(project, action, received_at)
        outcome = _handle_webhook(action, project, body)
        # Events we ignore (PROJECT_UPDATED follows every model_version switch the worker
        # makes) change nothing: a pass for them would only compete with real work.
        if reconfigured or outcome.sync or not outcome.body.get("ignored"):
            worker.notify(project, sync=reconfigured or outcome.sync)
        return jsonify(outcome.body if outcome.status >= 400 else {"status": "ok", "action": action, **outcome.body}), outcome.status

    def _observed_label_config(project: int, value: Any) -> str | None:
        """The label config a webhook or /predict carries; a malformed one is left out (with a warning), so
        the event itself (a rating) is still recorded."""
        try:
            return ls_payloads.label_config(value)
        except BadRequestError as exc:
            log.warning("project %s: ignoring the payload's label config: %s", project, exc)
            return None

    def _handle_webhook(action: str, project: int, body: dict[str, Any]) -> _Outcome:
        if action == "TASKS_CREATED":
            tasks, invalid = ls_payloads.valid_tasks(body.get("tasks"))
            outcome = {"new_tasks": facts.add_tasks(project, tasks)}
            if invalid:
                log.warning("project %s: TASKS_CREATED had %d unusable task entries: %s", project, len(invalid), invalid[:5])
                outcome["invalid_tasks"] = invalid
            return _Outcome(outcome)
        if action in ANNOTATION_ACTIONS:
            schema = projects.schema(project)
            annotation, task = body.get("annotation"), body.get("task")
            if not isinstance(annotation, dict):
                raise BadRequestError(f"{action} payload has no 'annotation' object")
            rating = ls_payloads.read_rating(annotation, schema.scale, fallback_task=task)
            # The payload's task registers the rated task only if it is that task: a mismatched pair would
            # file one task's data under another's id (the task is then fetched from Label Studio instead).
            task_data = (task["data"] if isinstance(task, dict) and task.get("id") == rating.task_id
                         and isinstance(task.get("data"), dict) else None)
            recorded = facts.record_annotation(project, rating, task_data)
            # A rating for a task we never saw and got no data for: fetch the task from Label Studio.
            # A rating of an annotation or task deleted moments ago may be a late webhook undoing the
            # deletion, or (Label Studio on SQLite reuses ids) a new one: Label Studio's listing says which.
            recently_deleted = records.recently_deleted(project, "annotations", rating.annotation_id) or \
                records.recently_deleted(project, "tasks", rating.task_id)
            sync = not recorded.task_known or recently_deleted
            if not recorded.applied:
                return _Outcome({"ignored": True, "reason": f"annotation {rating.annotation_id}: a newer version "
                                 "(a later updated_at) is recorded already; this one changes nothing"}, sync=sync)
            if rating.error:
                log.warning("project %s annotation %s: %s", project, rating.annotation_id, rating.error)
                return _Outcome({"error": "bad_rating", "message": rating.error, "recorded_as": "not a rating"}, 422, sync)
            outcome = {"target": rating.target}
            if recently_deleted:
                outcome["note"] = (f"annotation {rating.annotation_id} or task {rating.task_id} was deleted recently: "
                                   "Label Studio's listing decides whether this rating stays")
            elif not recorded.task_known:
                outcome["note"] = f"task {rating.task_id} is unknown here: it will be fetched from Label Studio"
            return _Outcome(outcome, sync=sync)
        if action == "ANNOTATIONS_DELETED":
            ids, invalid = ls_payloads.id_list(body, "annotations")
            return _Outcome({"deleted": facts.delete_annotations(project, ids),
                             **({"invalid_annotations": invalid} if invalid else {})})
        if action == "TASKS_DELETED":
            ids, invalid = ls_payloads.id_list(body, "tasks")
            if ids:
                facts.delete_tasks(project, ids)
            return _Outcome({"invalid_tasks": invalid} if invalid else {})
        if action == "START_TRAINING":
            facts.request_batch(project)
            return _Outcome({})
        return _Outcome({"ignored": True})

    @app.post("/train")
    def train() -> Response:
        # Older Label Studio versions call /train instead of sending START_TRAINING.
        body = _json_body()
        project = ls_payloads.project_id(body.get("project"))
        projects.get(project)
        facts.request_batch(project)
        worker.notify(project)
        return jsonify(status="ok")

    @app.get("/projects/<int:project>/status")
    def status(project: int) -> Response:
        _known_loop(project)
        loop, schema = projects.get_with_schema(project)
        return jsonify(**{**loop.status(), "warnings": projects.settings_warnings(project)}, rating=schema.describe(),
                       model_version=version_name(loop.head_version()),
                       worker=redacted_worker_status(project),
                       activity=worker.activity(project), view=records.view(project),
                       last_webhooks=last_webhooks.of(project), connections=records.connections(project),
                       params_error=projects.params_error(project), evaluation=runtime.evaluations.status(project))

    @app.get("/projects/<int:project>/evaluation")
    def evaluation(project: int) -> Response:
        return jsonify(runtime.evaluations.report(_known_loop(project)))

    @app.get("/projects/<int:project>/evaluation/page")
    def evaluation_page(project: int) -> Response:
        return Response(render_page(runtime.evaluations.report(_known_loop(project))), mimetype="text/html")

    @app.post("/projects/<int:project>/next-batch")
    def next_batch(project: int) -> Response | tuple[Response, int]:
        _known_loop(project)
        facts.request_batch(project)
        worker.notify(project)
        with admin_waits.slot() as may_wait:
            finished = worker.wait_idle(project, NEXT_BATCH_WAIT_S) if may_wait else False
        view = records.view(project) or {}
        if not may_wait:
            # Every waiting slot is taken: the batch is requested all the same, the worker pushes it.
            return jsonify(complete=False, view=view, worker=redacted_worker_status(project), message=(
                f"{admin_waits.size} admin requests are already waiting: the new batch is requested; "
                f"follow it in /projects/{project}/status")), 202
        return jsonify(complete=finished, view=view, worker=redacted_worker_status(project))

    @app.post("/projects/<int:project>/reset-seen")
    def reset_seen(project: int) -> Response:
        _known_loop(project)
        count = facts.reset_seen(project)
        worker.notify(project)
        return jsonify(reset=count)

    @app.post("/projects/<int:project>/retry-failed")
    def retry_failed(project: int) -> Response:
        """Read the project's failed tasks once more, now that the admin fixed what the status said."""
        count = _known_loop(project).retry_failed()
        worker.notify(project)
        return jsonify(retried=count)

    def _known_loop(project: int):
        if project not in projects.project_ids():
            raise UnknownProjectError(f"project {project} is not connected to this backend")
        return projects.get(project)

    @app.errorhandler(BackendError)
    def backend_error(exc: BackendError) -> Response:
        if isinstance(exc, ConfigError):
            log.error("%s", exc)
        message = redactor.redact(str(exc))
        response = jsonify(error=exc.code, message=message)
        # Label Studio reads no body of a failed /setup: its connection dialog shows the
        # status line (requests' HTTPError text). So the reason goes there too.
        response.status = f"{exc.http_status} {_reason_phrase(message)}"
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        message = exc.description
        if isinstance(exc, RequestEntityTooLarge):
            message = f"request body exceeds the limit of {settings.max_request_bytes} bytes (MAX_REQUEST_BYTES)"
        return jsonify(error=exc.name.lower().replace(" ", "_"), message=message), exc.code or 500

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(error="internal", message=f"{type(exc).__name__} (details in the backend log)"), 500

    return app


class LatestWebhooks:
    """Project -> action -> arrival (unix time) of its latest webhook: when Label Studio last told us what.
    Request threads write it while the status reads it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_project: dict[int, dict[str, float]] = {}

    def note(self, project: int, action: str, received_at: float) -> None:
        if not WEBHOOK_ACTION.fullmatch(action):
            return
        with self._lock:
            latest = self._by_project.setdefault(project, {})
            latest.pop(action, None)  # re-inserted last: the dict runs from the oldest action to the newest
            latest[action] = received_at
            while len(latest) > ACTIONS_KEPT:
                del latest[next(iter(latest))]

    def of(self, project: int) -> dict[str, float]:
        with self._lock:
            return dict(self._by_project.get(project, {}))


def _loggable(text: str) -> str:
    """`text` for one access log field: the path arrives percent-decoded, and a %0A or a quote in it (or in
    the user agent) must not forge a line or a field."""
    return CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", text).replace('"', '\\"')


class AsciiIntConverter(IntegerConverter):
    """Project ids in paths are ASCII digits: werkzeug's \\d also took "٢" (Arabic-Indic) and "２" (fullwidth)
    for project 2, which /predict and /setup refuse."""

    regex = r"[0-9]+"


@dataclass(frozen=True)
class _Outcome:
    """What a webhook did: the response body and status, and whether the worker must re-read Label Studio.

    A rating that cannot be read is still recorded (its task is seen) and answered 422.
    """

    body: dict[str, Any]
    status: int = 200
    sync: bool = False


def _reason_phrase(message: str, limit: int = 300) -> str:
    """`message` as an HTTP reason phrase: one line of printable latin-1, cut at `limit`. Other characters
    become escapes (\\u0434), not "?": a control named in Cyrillic must stay recognisable in the dialog."""
    text = " ".join(message.split()).encode("latin-1", "backslashreplace").decode("latin-1")
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_body() -> dict[str, Any]:
    # A body with a Content-Length over MAX_CONTENT_LENGTH raises RequestEntityTooLarge (413)
    # here; `silent` only hides parse errors.
    _refuse_truncated_stream()
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # JSON nested thousands deep
        body = None
    if not isinstance(body, dict):
        raise BadRequestError("request body must be a JSON object")
    return body


def _refuse_truncated_stream() -> None:
    """413 for a chunked body (no Content-Length) longer than MAX_CONTENT_LENGTH.

    Werkzeug reads such a body only up to the limit and silently drops the rest, so
    the JSON parser would see a truncated document and answer a misleading 400.
    """
    limit = request.max_content_length
    if request.content_length is not None or limit is None or "wsgi.input_terminated" not in request.environ:
        return
    if len(request.get_data(cache=True)) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
