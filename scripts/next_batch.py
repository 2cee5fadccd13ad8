"""Ask the backend for a fresh next batch now and print it.

    python -m scripts.next_batch --project 3

The backend re-selects the top-k unseen tasks for the current head and points the
project's "Next batch (ML)" tab at them. Uses BASIC_AUTH_USER/BASIC_AUTH_PASS if set.
"""

from __future__ import annotations

import argparse
import os
import sys

import requests

from ml_backend.adapters.ls_payloads import project_id_argument


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=project_id_argument, required=True)
    parser.add_argument("--backend-url", default=os.environ.get("BACKEND_URL", "http://localhost:9090"))
    args = parser.parse_args(argv)
    user, password = os.environ.get("BASIC_AUTH_USER"), os.environ.get("BASIC_AUTH_PASS")
    url = f"{args.backend_url.rstrip('/')}/projects/{args.project}/next-batch"
    try:
        response = requests.post(url, auth=(user, password) if user else None, timeout=60)
        # 202: every waiting slot was taken; the batch is requested all the same (README, HTTP endpoints)
        body = response.json() if response.status_code in (200, 202) else None
    except requests.RequestException as exc:  # unreachable, no scheme, a body that is not JSON
        return _fail(f"no answer from the backend at {url}: {exc}")
    if not isinstance(body, dict):
        return _fail(f"the backend answered {response.status_code}: {response.text[:300]}")
    view = body.get("view") or {}
    if not body.get("complete"):
        print(f"warning: the backend is still busy ({body.get('message') or body.get('worker')}); "
              "showing the last pushed batch", file=sys.stderr)
    print(f"view {view.get('id')} ({view.get('title')}), model {view.get('model_version')}")
    for task, score in zip(view.get("task_ids", []), view.get("scores", [])):
        print(f"  task {task:>8}  score {score:.3f}")
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
