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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=int, required=True)
    parser.add_argument("--backend-url", default=os.environ.get("BACKEND_URL", "http://localhost:9090"))
    args = parser.parse_args()
    user, password = os.environ.get("BASIC_AUTH_USER"), os.environ.get("BASIC_AUTH_PASS")
    response = requests.post(
        f"{args.backend_url.rstrip('/')}/projects/{args.project}/next-batch",
        auth=(user, password) if user else None, timeout=60,
    )
    if response.status_code != 200:
        sys.exit(f"backend answered {response.status_code}: {response.text[:300]}")
    body = response.json()
    view = body.get("view") or {}
    if not body.get("complete"):
        print(f"warning: the backend is still busy ({body.get('worker')}); showing the last pushed batch", file=sys.stderr)
    print(f"view {view.get('id')} ({view.get('title')}), model {view.get('model_version')}")
    for task, score in zip(view.get("task_ids", []), view.get("scores", [])):
        print(f"  task {task:>8}  score {score:.3f}")


if __name__ == "__main__":
    main()
