"""Project bootstrap for scripts and tests: create a project, connect this backend, import images.

Not used by the running service (that is `ls_client`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

import requests
from label_studio_sdk import LabelStudio

from .ls_client import LabelStudioGateway


def admin_client(url: str, api_key: str) -> LabelStudio:
    return LabelStudio(base_url=url, api_key=api_key)


def create_project(client: LabelStudio, title: str, label_config: str) -> int:
    return int(client.projects.create(title=title, label_config=label_config).id)


def find_project(client: LabelStudio, title: str) -> int | None:
    for project in client.projects.list():
        if project.title == title:
            return int(project.id)
    return None


def connect_backend(
    client: LabelStudio, project: int, backend_url: str, title: str, extra_params: dict[str, Any],
    basic_auth: tuple[str, str] | None = None,
) -> int:
    """Connect (or reconnect with new params) this backend to a project; returns the connection id.

    Label Studio then calls /setup with `extra_params` and adds a webhook to backend_url/webhook.
    `basic_auth` (user, password): the backend's BASIC_AUTH_USER/BASIC_AUTH_PASS, registered
    in the connection so Label Studio sends them.
    """
    auth = ({"auth_method": "BASIC_AUTH", "basic_auth_user": basic_auth[0], "basic_auth_pass": basic_auth[1]}
            if basic_auth else {})
    for connection in client.ml.list(project=project):
        if connection.url.rstrip("/") == backend_url.rstrip("/"):
            # ml.update(id, extra_params=...) alone answers 500 in 1.23: url and project must be sent too.
            client.ml.update(connection.id, url=backend_url, project=project, extra_params=extra_params, **auth)
            return int(connection.id)
    connection = client.ml.create(project=project, url=backend_url, title=title, extra_params=extra_params, **auth)
    return int(connection.id)


def basic_auth_from_env() -> tuple[str, str] | None:
    """(BASIC_AUTH_USER, BASIC_AUTH_PASS) when both are set: what the backend was started with."""
    user, password = os.environ.get("BASIC_AUTH_USER"), os.environ.get("BASIC_AUTH_PASS")
    return (user, password) if user and password else None


# Django's DATA_UPLOAD_MAX_NUMBER_FILES: Label Studio answers 500 to a multipart import with more files.
MAX_FILES_PER_UPLOAD = 100


def upload_images(label_studio_url: str, api_key: str, project: int, paths: Sequence[Path]) -> list[int]:
    """Upload image files as new tasks (the SDK 2.x has no multipart import); returns task ids."""
    headers = LabelStudioGateway(label_studio_url, api_key).auth_headers()
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


def import_local_folder(
    client: LabelStudio, project: int, folder: Path, title: str = "local images", attempts: int = 3,
) -> int:
    """Add a local-files storage on `folder` (under LOCAL_FILES_DOCUMENT_ROOT) and sync it; returns the storage id.

    On SQLite, Label Studio's sync fails part-way with "database is locked" when another
    writer (such as this backend pushing predictions) is active. A sync only creates the
    missing tasks, so a failed one is simply run again.
    """
    storage = client.import_storage.local.create(
        project=project, path=str(folder.resolve()), use_blob_urls=True, title=title,
        regex_filter=r".*\.(png|jpe?g|webp)", recursive_scan=True,
    )
    for _ in range(attempts):
        client.import_storage.local.sync(storage.id)
        if client.import_storage.local.get(storage.id).status == "completed":
            return int(storage.id)
        time.sleep(1.0)
    raise RuntimeError(f"local storage {storage.id} failed to sync {attempts} times (see Label Studio's log)")
