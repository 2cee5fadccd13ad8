"""Connect this backend to a Label Studio project (creating the project if asked).

    python -m scripts.connect_project --create "Dogs" --prompt "dogs at a dog show" --batch-size 10
    python -m scripts.connect_project --project 3 --params '{"strategy": "nearest"}'

Label Studio then calls the backend's /setup; the backend checks the label config,
makes sure task imports reach it (TASKS_CREATED), and embeds the project's existing tasks.
Reads LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY from the environment unless given, and
registers the backend's BASIC_AUTH_USER/BASIC_AUTH_PASS (when set) in the connection.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ml_backend.adapters.ls_admin import admin_client, basic_auth_from_env, connect_backend, create_project

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ls-url", default=os.environ.get("LABEL_STUDIO_URL", "http://localhost:8080"))
    parser.add_argument("--api-key", default=os.environ.get("LABEL_STUDIO_API_KEY"))
    parser.add_argument("--backend-url", default=os.environ.get("BACKEND_URL", "http://localhost:9090"))
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--project", type=int, help="an existing project id")
    target.add_argument("--create", metavar="TITLE", help="create a project from --label-config")
    parser.add_argument("--label-config", type=Path, default=ROOT / "label_config.xml")
    parser.add_argument("--prompt", help="text that starts W before any rating")
    parser.add_argument("--batch-size", type=int, help="k, tasks per next batch")
    parser.add_argument("--strategy", help="selection strategy name")
    parser.add_argument("--params", default="{}", help="more project parameters as JSON (see README)")
    args = parser.parse_args()
    if not args.api_key:
        sys.exit("set LABEL_STUDIO_API_KEY or pass --api-key")

    params = json.loads(args.params)
    for key in ("prompt", "batch_size", "strategy"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    client = admin_client(args.ls_url, args.api_key)
    project = args.project or create_project(client, args.create, args.label_config.read_text())
    connection = connect_backend(client, project, args.backend_url, "CLIP vector queue", params,
                                 basic_auth=basic_auth_from_env())
    print(json.dumps({"project": project, "ml_backend_connection": connection, "params": params}))


if __name__ == "__main__":
    main()
