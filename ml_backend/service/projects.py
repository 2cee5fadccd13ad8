"""One `ActiveLoop` per project, built once per process and rebuilt when its config changes.

The label config decides the project's modality, and so which embedder serves it.
Parameters are validated once, when they are set (or first read after a start), and
the loop gets the `ProjectParams` object.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from ..adapters.ls_config import ProjectSchema, parse_label_config
from ..adapters.ls_media import TaskImageLoader, TaskTextLoader
from ..adapters.ls_records import LabelStudioRecords
from ..core.audit_log import AuditLog
from ..core.errors import ConfigError, ModelUnavailableError, UnknownProjectError
from ..core.facts import Facts
from ..core.fetch import ImageFetcher
from ..core.ledger import Ledger
from ..core.loop import ActiveLoop, ItemLoader
from ..core.params import ProjectParams, read_params_file
from ..core.store import VectorStore
from .embedders import EmbedderRegistry
from .connections import ConnectionReport

log = logging.getLogger(__name__)

RECHECK_REPEATED_CONNECTIONS_S = 10.0


class ProjectRegistry:
    """Lock-guarded map of project id -> (loop, schema); remembers why a project cannot run."""

    def __init__(
        self, ledger: Ledger, facts: Facts, records: LabelStudioRecords, chroma_client: Any,
        embedders: EmbedderRegistry, fetcher: ImageFetcher, label_studio_url: str,
        auth_headers: Callable[[], dict[str, str]], local_files_root: str | None = None,
        params_file: Path | None = None, fetch_workers: int = 4, text_fetcher: ImageFetcher | None = None,
        audit_log: AuditLog | None = None,
    ):
        self.ledger = ledger
        self.facts = facts
        self.records = records
        self._chroma = chroma_client
        self.embedders = embedders
        self._fetcher = fetcher
        self._text_fetcher = text_fetcher or fetcher
        self._label_studio_url = label_studio_url
        self._auth_headers = auth_headers
        self._local_files_root = local_files_root
        self._params_file = params_file
        self._fetch_workers = fetch_workers
        self._audit_log = audit_log
        self._lock = threading.RLock()
        self._loops: dict[int, tuple[ActiveLoop, ProjectSchema]] = {}
        self._params: dict[int, ProjectParams] = {}  # validated, as the loops get them
        self._stores: dict[int, VectorStore] = {}
        self._build_errors: dict[int, str] = {}  # why a project's loop cannot be built now
        self._refused_params: dict[int, str] = {}  # the latest extra params refused, until valid ones arrive
        # Set by the runtime to the worker's notify: images that loaded in the background are ready.
        self.on_items_ready: Callable[[int], None] | None = None

    def configure(self, project: int, label_config: str | None = None, extra_params: Any = None) -> tuple[ActiveLoop, bool]:
        """Record a project's label config and/or extra params, then (re)build its loop.

        Returns (loop, changed): `changed` is False when nothing differed from what was
        recorded. Raises ConfigError (also kept in `errors`) when they cannot drive the
        loop; what was given is still recorded, so a later fix in Label Studio is picked up.
        """
        record = self.ledger.project(project)
        # One read of the map: a concurrent configure may drop the entry between a check and a second read.
        built = self._loops.get(project)
        if (
            record is not None and built is not None
            and (label_config is None or label_config == self.records.label_config(project))
            and (extra_params is None or _raw_params_or_none(extra_params) == record.params)
        ):
            return built[0], False
        raw, params, problem = None, None, None
        if extra_params is not None:
            try:
                params = self._validated(project, extra_params)  # fails here, at /setup, where the admin sees it
                raw = _raw_params(extra_params)
            except ConfigError as exc:
                problem = exc
        # Recorded and put in force in one step: two calls at once must not leave the ledger holding one's
        # params while the project runs the other's (a later identical call would then change nothing).
        with self._lock:
            # Label config first: a project the ledger knows (the params create it) always has one.
            if label_config is not None:
                self.records.set_label_config(project, label_config)
            self.facts.set_params(project, raw)
            self._loops.pop(project, None)
            if problem is not None:
                self._refused_params[project] = str(problem)
                raise problem
            if params is not None:
                self._params[project] = params
                self._refused_params.pop(project, None)
        return self.get(project), True

    @property
    def errors(self) -> dict[int, str]:
        """Project id -> what stops it or what it runs without: its loop cannot be built, or its latest
        extra params were refused (it runs with the last valid ones, the defaults for a new project)."""
        found = dict(self._build_errors)
        for project, reason in list(self._refused_params.items()):
            refused = f"extra params refused, running with the last valid ones: {reason}"
            found[project] = f"{found[project]}; {refused}" if project in found else refused
        return found

    def params_error(self, project: int) -> str | None:
        """Why the project's latest extra params were refused (None: they were applied)."""
        return self._refused_params.get(project)

    def params_from_setup(self, project: int, extra_params: Any) -> tuple[Any, bool]:
        """The extra params a /setup call may apply, and whether the connections need a new look.

        With one connection to this backend its /setup params are the project's. With
        several, Label Studio calls /setup with each one's params in turn; applying them
        all would flip the project between them (and refit at every flip). Then only the
        oldest connection's params count, read from Label Studio by the worker; params no
        connection was known to hold mean an admin edited one, so they are read again.
        """
        report = ConnectionReport.from_state(self.records.connections(project))
        if report is None or report.warning is None:
            return extra_params, False
        # While a repeat lasts, look again now and then to see it fixed. Not at every call:
        # listing the connections makes Label Studio call /setup on each of them.
        stale = time.time() - report.checked_at > RECHECK_REPEATED_CONNECTIONS_S
        if len(report.connections) <= 1:
            return extra_params, stale
        known = [_raw_params_or_none(p) for p in report.params]
        return None, stale or _raw_params_or_none(extra_params) not in known

    def apply_connection_params(self, project: int, extra_params: Any) -> None:
        """Make `extra_params` (the primary connection's) the project's; a bad set is reported, not raised."""
        try:
            self.configure(project, extra_params=extra_params)
        except ConfigError as exc:
            log.error("project %s: %s", project, exc)

    def observe(self, project: int, label_config: str | None) -> bool:
        """Note a label config seen in a webhook or /predict; reconfigure if it changed (returns True).

        Raises `UnknownProjectError` for a project never set up: only /setup (Label Studio
        connecting the backend) creates a project, so made-up ids leave nothing behind.
        """
        record = self.ledger.project(project)
        if record is None:
            raise UnknownProjectError(
                f"project {project} is not connected to this backend: connect the backend to it in Label Studio "
                "(the project's Settings > Model), which calls /setup")
        if label_config and self.records.label_config(project) != label_config:
            try:
                self.configure(project, label_config=label_config)
                return True
            except ConfigError as exc:
                log.error("project %s: %s", project, exc)
        return False

    def is_known(self, project: int) -> bool:
        return self.ledger.project(project) is not None

    def schema(self, project: int) -> ProjectSchema:
        """The project's rating scale and task field, without building its loop.

        Webhooks need only this; building a loop (loading vectors from Chroma) can take
        seconds after a restart, longer than Label Studio waits for a webhook.
        """
        built = self._loops.get(project)  # no lock: the worker may hold it for seconds while building the loop
        return built[1] if built is not None else self._read_config(project)[1]

    def get(self, project: int) -> ActiveLoop:
        return self.get_with_schema(project)[0]

    def get_with_schema(self, project: int) -> tuple[ActiveLoop, ProjectSchema]:
        with self._lock:
            if project in self._loops:
                return self._loops[project]
            try:
                params, schema = self._read_config(project)
                embedder = self.embedders.get(schema.modality)
            except (ConfigError, ModelUnavailableError) as exc:
                self._build_errors[project] = str(exc)
                log.error("project %s: %s", project, exc)
                raise
            self._build_errors.pop(project, None)
            loop = ActiveLoop(project, params, self.ledger, self._store(project, embedder.model_id), embedder,
                              self._loader(schema), self._fetch_workers, on_items_ready=self._items_ready,
                              audit=self._audit_log, source=schema.source)
            for warning in [*loop.warnings(), *schema.notes]:
                log.warning("project %s: %s", project, warning)
            self._loops[project] = (loop, schema)
            return loop, schema

    def _loader(self, schema: ProjectSchema) -> ItemLoader:
        """(Task data, task id) -> what the project's embedder takes: an RGB image or a text."""
        fetcher = self._text_fetcher if schema.modality == "text" else self._fetcher
        files = TaskImageLoader(schema.data_key, self._label_studio_url, fetcher, self._auth_headers, self._local_files_root)
        return TaskTextLoader(schema.data_key, schema.value_is_url, files) if schema.modality == "text" else files

    def _read_config(self, project: int) -> tuple[ProjectParams, ProjectSchema]:
        params = self._params.get(project)
        if params is None:  # first use since the start: the parameters recorded at /setup
            record = self.ledger.project(project)
            if record is None:
                raise UnknownProjectError(f"project {project} is not connected to this backend")
            params = self._params[project] = self._validated(project, record.params)
        label_config = self.records.label_config(project)
        if not label_config:
            raise ConfigError(f"project {project} has no label config yet (connect the backend in Label Studio)")
        return params, parse_label_config(label_config, params.rating_control, params.choice_values)

    def _validated(self, project: int, extra_params: Any) -> ProjectParams:
        """The project's parameters: defaults < PROJECT_PARAMS_FILE's "default" and "<id>" < the admin's own."""
        return ProjectParams.parse(self._file_params("default"), self._file_params(str(project)), extra_params)

    def forget_vectors(self, project: int, kind: str, ids: list[int]) -> None:
        """A `Facts.on_deleted` listener: deleted tasks leave the project's store (when it is open;
        otherwise the store drops them as orphans when it is next opened)."""
        store = self._stores.get(project)
        if kind == "tasks" and store is not None and ids:
            store.delete(ids)

    def _items_ready(self, project: int) -> None:
        if self.on_items_ready is not None:
            self.on_items_ready(project)

    def warnings(self) -> dict[str, list[str]]:
        """Project id -> what its admin should know: repeated connections or webhooks, and settings
        the project runs without (a prompt on a model with no text tower; built loops only)."""
        found: dict[str, list[str]] = {}
        for project in self.ledger.project_ids():
            state = self.records.connections(project) or {}
            if state.get("warning"):
                found.setdefault(str(project), []).append(state["warning"])
        for project in list(self._loops):
            found.setdefault(str(project), []).extend(self.settings_warnings(project))
        return {project: warnings for project, warnings in found.items() if warnings}

    def settings_warnings(self, project: int) -> list[str]:
        """What the admin set that a built project runs without, and which rating control it reads when the
        label config offers several (or passed some over); [] while its loop is not built."""
        built = self._loops.get(project)
        return [*built[0].warnings(), *built[1].notes] if built is not None else []

    def project_ids(self) -> list[int]:
        return self.ledger.project_ids()

    def _store(self, project: int, model_id: str) -> VectorStore:
        # Stores outlive loop rebuilds: loading the mirror from Chroma is the expensive part. The
        # loop switches the store to its model (dropping another model's vectors), and one store
        # object per project means a loop still embedding with the old model is refused, not mixed in.
        if project not in self._stores:
            self._stores[project] = VectorStore(self._chroma, f"project-{project}", model_id)
        return self._stores[project]

    def _file_params(self, key: str) -> dict:
        if not self._params_file:
            return {}
        content = read_params_file(self._params_file)
        layer = content.get(key, {})
        if not isinstance(layer, dict):  # ignoring it would run the project on parameters the admin did not mean
            raise ConfigError(f"PROJECT_PARAMS_FILE={self._params_file}: the entry {key!r} must be an object "
                              f"of parameters, got a JSON {type(layer).__name__}")
        return layer


def _raw_params(extra_params: Any) -> dict:
    """Extra params as the admin wrote them (validated already), stored as a dict."""
    if isinstance(extra_params, str):
        return json.loads(extra_params) if extra_params.strip() else {}
    return dict(extra_params or {})


def _raw_params_or_none(extra_params: Any) -> dict | None:
    try:
        return _raw_params(extra_params)
    except (ValueError, TypeError):
        return None
