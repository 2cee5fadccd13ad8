"""Connect this backend to a Label Studio project (creating the project if asked).

    .venv/bin/python -m scripts.connect_project --create "Dogs" --prompt "dogs at a dog show" --batch-size 10
    .venv/bin/python -m scripts.connect_project --project 3 --params '{"strategy": "nearest"}'

One connection per backend: if the project is already connected to this backend (under
any spelling of its URL), that connection is kept and the given parameters are merged
into its current ones (`--replace` starts from the defaults instead); extra connections
to the same backend and their webhooks are removed. Label Studio then calls the
backend's /setup; the backend checks the label config, makes sure task imports reach
it (TASKS_CREATED), and embeds the project's existing tasks.
Reads LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY and BACKEND_URL from the environment unless given,
and registers the backend's BASIC_AUTH_USER/BASIC_AUTH_PASS (when set) in the connection.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import httpx
import requests
from label_studio_sdk.core.api_error import ApiError

from ml_backend.adapters.ls_admin import admin_client, basic_auth_from_env, connect_backend, create_project
from ml_backend.adapters.ls_payloads import project_id_argument
from ml_backend.core.errors import ConfigError
from ml_backend.core.params import ProjectParams

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ls-url", default=os.environ.get("LABEL_STUDIO_URL", "http://localhost:8080"))
    parser.add_argument("--api-key", default=os.environ.get("LABEL_STUDIO_API_KEY"))
    parser.add_argument("--backend-url", default=os.environ.get("BACKEND_URL", "http://localhost:9090"),
                        help="the backend's URL as Label Studio reaches it")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--project", type=project_id_argument, help="an existing project id")
    target.add_argument("--create", metavar="TITLE", help="create a project from --label-config")
    parser.add_argument("--label-config", type=Path, default=ROOT / "label_config.xml")
    parser.add_argument("--prompt", help="text that starts W before any rating")
    parser.add_argument("--batch-size", type=int, help="k, tasks per next batch")
    parser.add_argument("--strategy", help="selection strategy name")
    parser.add_argument("--params", default="{}", help="more project parameters as JSON, merged into the current ones (see README)")
    parser.add_argument("--replace", action="store_true", help="replace the connection's parameters instead of merging")
    args = parser.parse_args(argv)
    if not args.api_key:
        return _fail("set LABEL_STUDIO_API_KEY or pass --api-key (Label Studio: Account & Settings -> Access Token)")

    try:
        params = json.loads(args.params)
    except (json.JSONDecodeError, RecursionError) as exc:
        return _fail(f"--params is not valid JSON: {exc}")
    if not isinstance(params, dict):
        return _fail(f"--params must be a JSON object, got {type(params).__name__}")
    for key in ("prompt", "batch_size", "strategy"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    client = admin_client(args.ls_url, args.api_key)
    try:
        project = args.project if args.project is not None else create_project(
            client, args.create, args.label_config.read_text(encoding="utf-8"))
        connected = connect_backend(client, project, args.backend_url, "CLIP vector queue", params,
                                    replace=args.replace, validate=ProjectParams.parse, basic_auth=basic_auth_from_env())
    except ConfigError as exc:
        return _fail(str(exc))
    except ApiError as exc:
        return _fail(f"Label Studio refused ({exc.status_code}): {_label_studio_message(exc.body)}")
    except (httpx.HTTPError, httpx.InvalidURL, requests.RequestException) as exc:
        return _fail(f"cannot reach Label Studio at {args.ls_url}: {exc}")
    except (OSError, UnicodeDecodeError) as exc:  # an unreadable label config
        return _fail(f"cannot read --label-config {args.label_config}: {exc}")
    if connected.reused:
        print(f"project {project}: kept ML connection {connected.connection} ({connected.url}), parameters "
              f"{'replaced' if args.replace else 'merged'}", file=sys.stderr)
    if connected.removed_connections or connected.removed_webhooks:
        print(f"project {project}: removed duplicate connections {connected.removed_connections} and webhooks "
              f"{connected.removed_webhooks} to the same backend (each delivered every event again)", file=sys.stderr)
    print(json.dumps({"project": project, "ml_backend_connection": connected.connection, "url": connected.url,
                      "params": connected.params}))
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _label_studio_message(body: object) -> str:
    """Label Studio's validation message, without the JSON around it."""
    if isinstance(body, dict):
        messages = body.get("validation_errors") or body.get("detail") or body
        if isinstance(messages, dict):
            return " ".join(str(m) for value in messages.values() for m in (value if isinstance(value, list) else [value]))
        return str(messages)
    return str(body)


if __name__ == "__main__":
    sys.exit(main())
