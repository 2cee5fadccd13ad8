"""Project bootstrap for scripts and tests: create a project, connect this backend, import tasks, rate.

Not used by the running service (that is `ls_client`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import requests
from label_studio_sdk import LabelStudio

from ..core.params import merge_params
from .ls_client import LabelStudioClient
from .ml_connections import (Connection, Hook, Probe, basic_auth_header, hooks_to, instance_id_at, same_backend,
                             webhook_url)


def admin_client(url: str, api_key: str) -> LabelStudio:
    return LabelStudio(base_url=url, api_key=api_key)


def create_project(client: LabelStudio, title: str, label_config: str) -> int:
    return int(client.projects.create(title=title, label_config=label_config).id)


def find_project(client: LabelStudio, title: str) -> int | None:
    for project in client.projects.list():
        if project.title == title:
            return int(project.id)
    return None


@dataclass(frozen=True)
class Connected:
    """What `connect_backend` did."""

    connection: int
    url: str                      # the URL Label Studio uses for this backend (an existing one is kept)
    params: dict[str, Any]        # the connection's extra params now
    reused: bool                  # an existing connection to this backend was kept
    removed_connections: list[int] = field(default_factory=list)
    removed_webhooks: list[int] = field(default_factory=list)


def connect_backend(
    client: LabelStudio, project: int, backend_url: str, title: str, params: dict[str, Any],
    *, replace: bool = False, validate: Callable[[dict[str, Any]], object] | None = None,
    probe: Probe = instance_id_at, basic_auth: tuple[str, str] | None = None,
) -> Connected:
    """Connect this backend to a project exactly once.

    An existing connection to the same backend, under any spelling of its URL, is kept
    (with the URL Label Studio already uses) and `params` are merged into its extra
    params, or replace them with `replace`. Further connections to the same backend are
    deleted, and so are webhooks to it beyond one: each would deliver every event again.
    `validate` sees the resulting params before Label Studio is changed (it raises to stop).
    Label Studio then calls /setup with them. `basic_auth` (user, password): the backend's
    BASIC_AUTH_USER/BASIC_AUTH_PASS, registered in the connection so Label Studio sends them
    (and in a webhook made here).
    """
    auth = ({"auth_method": "BASIC_AUTH", "basic_auth_user": basic_auth[0], "basic_auth_pass": basic_auth[1]}
            if basic_auth else {})
    listed = [Connection.of(m) for m in client.ml.list(project=project)]
    ours = sorted((c for c in listed if same_backend(c.url, backend_url, probe)), key=lambda c: c.id)
    if not ours:
        if validate is not None:
            validate(params)
        created = client.ml.create(project=project, url=backend_url, title=title, extra_params=_as_text(params), **auth)
        return Connected(int(created.id), backend_url, dict(params), reused=False)
    keep, extra = ours[0], ours[1:]
    merged = dict(params) if replace else merge_params(keep.extra_params, params)
    if validate is not None:
        validate(merged)
    # ml.update(id, extra_params=...) alone answers 500 in 1.23: url and project must be sent too.
    client.ml.update(keep.id, url=keep.url, project=project, extra_params=_as_text(merged), **auth)
    for connection in extra:
        client.ml.delete(connection.id)
    hooks = hooks_to([c.url for c in ours] + [backend_url], [Hook.of(h) for h in client.webhooks.list(project=str(project))])
    kept = _webhook_to_keep(keep, hooks)
    removed_hooks = [h.id for h in hooks if kept is None or h.id != kept.id]
    for hook_id in removed_hooks:
        client.webhooks.delete(hook_id)
    if kept is None:  # Label Studio made none, or it was deleted: events would never arrive
        client.webhooks.create(url=webhook_url(keep.url), project=project, send_payload=True, send_for_all_actions=True,
                               **({"headers": basic_auth_header(*basic_auth)} if basic_auth else {}))
    return Connected(keep.id, keep.url, merged, reused=True, removed_connections=[c.id for c in extra],
                     removed_webhooks=removed_hooks)


def _as_text(params: dict[str, Any]) -> str:
    """Extra params as the JSON text Label Studio's connection dialog edits. Stored as an
    object, the 1.23 dialog shows "[object Object]", and saving it sends that string."""
    return json.dumps(params)


def _webhook_to_keep(connection: Connection, hooks: list[Hook]) -> Hook | None:
    """The one hook the kept connection needs: the all-actions hook Label Studio made for its URL, if any."""
    all_actions = [h for h in hooks if h.all_actions and h.active]
    exact = [h for h in all_actions if h.url.rstrip("/") == webhook_url(connection.url)]
    return (exact or all_actions or [None])[0]


def basic_auth_from_env() -> tuple[str, str] | None:
    """(BASIC_AUTH_USER, BASIC_AUTH_PASS) when both are set: what the backend was started with."""
    user, password = os.environ.get("BASIC_AUTH_USER"), os.environ.get("BASIC_AUTH_PASS")
    return (user, password) if user and password else None


# Django's DATA_UPLOAD_MAX_NUMBER_FILES: Label Studio answers 500 to a multipart import with more files.
MAX_FILES_PER_UPLOAD = 100


def upload_images(label_studio_url: str, api_key: str, project: int, paths: Sequence[Path]) -> list[int]:
    """Upload image files as new tasks (the SDK 2.x has no multipart import); returns task ids."""
    headers = LabelStudioClient(label_studio_url, api_key).auth_headers()
    task_ids: list[int] = []
    for start in range(0, len(paths), MAX_FILES_PER_UPLOAD):
        chunk = paths[start : start + MAX_FILES_PER_UPLOAD]
        files = [(f"file{i}", (p.name, p.read_bytes(), "image/png")) for i, p in enumerate(chunk)]
        response = requests.post(
            f"{label_studio_url.rstrip('/')}/api/projects/{project}/import", headers=headers, files=files,
            params={"return_task_ids": "true"}, timeout=120,
        )
        response.raise_for_status()
        task_ids += [int(t) for t in response.json()["task_ids"]]
    return task_ids


IMAGE_FILES = r".*\.(png|jpe?g|webp)"


def import_tasks(client: LabelStudio, project: int, tasks: Sequence[dict[str, Any]]) -> list[int]:
    """Import task data dicts (e.g. {"text": "..."}) as new tasks; returns their ids."""
    response = client.projects.import_tasks(project, request=list(tasks), return_task_ids=True)
    return [int(t) for t in response.task_ids]


def rate(client: LabelStudio, task_id: int, choice: str, to_name: str, from_name: str = "relevance") -> int:
    """Annotate a task with one choice of the rating control (as the API key's user); returns the annotation id."""
    result = [{"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [choice]}}]
    return int(client.annotations.create(id=task_id, result=result, was_cancelled=False).id)


def import_local_folder(
    client: LabelStudio, project: int, folder: Path, title: str = "local images", attempts: int = 3,
    regex_filter: str = IMAGE_FILES,
) -> int:
    """Add a local-files storage on `folder` (under LOCAL_FILES_DOCUMENT_ROOT) and sync it; returns the storage id.

    On SQLite, Label Studio's sync fails part-way with "database is locked" when another
    writer (such as this backend pushing predictions) is active. A sync only creates the
    missing tasks, so a failed one is simply run again.
    """
    storage = client.import_storage.local.create(
        project=project, path=str(folder.resolve()), use_blob_urls=True, title=title,
        regex_filter=regex_filter, recursive_scan=True,
    )
    for _ in range(attempts):
        client.import_storage.local.sync(storage.id)
        if client.import_storage.local.get(storage.id).status == "completed":
            return int(storage.id)
        time.sleep(1.0)
    raise RuntimeError(f"local storage {storage.id} failed to sync {attempts} times (see Label Studio's log)")
