"""Run the backend: `python -m ml_backend.service` (waitress, one process, port 9090).

One process on purpose: the embedded Chroma client and the SQLite ledger are safe
across threads but not across processes, and the worker thread must be unique.
Scale out with a Chroma server (CHROMA_HOST) and one backend process per project group.

waitress reads each request whole on its own event loop before a request thread gets
it, so a client that sends slowly holds a connection, not one of the THREADS (with
gunicorn's threads, 16 half-sent requests froze every endpoint).
"""

from __future__ import annotations

import logging
import signal
import sys

import waitress

from ..core.embedding import check_embedding_model
from ..core.errors import ModelUnavailableError
from . import model_dir
from .app import create_app
from .settings import ServiceSettings, SettingsError

_HELD = []  # the MODEL_DIR lock's file, open for the process's lifetime
# Open connections at once; a slow or idle one costs a socket, not a thread.
CONNECTION_LIMIT = 500
# A connection that sends nothing (a request cut off midway, say) for this long is closed.
IDLE_TIMEOUT_S = 30
# waitress buffers a body before the app sees it: a little over MAX_REQUEST_BYTES, so that
# the app's own 413 (with its message) answers the ones just over the limit.
BODY_SLACK_BYTES = 1 << 20


def main() -> None:
    try:
        settings = ServiceSettings.from_env()
    except SettingsError as exc:
        _stop(exc.problems)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Secure by default (an open port needs credentials unless the admin says otherwise), and a
    # device, MODEL_DIR or params file that cannot work is said before the server starts.
    _stop(settings.startup_problems())
    _stop(model_dir.startup_problems(settings.model_dir))
    lock = model_dir.hold(settings.model_dir)
    if lock is None:
        _stop([f"another backend process (pid {model_dir.holder(settings.model_dir)}) uses MODEL_DIR="
               f"{settings.model_dir}: each needs its own MODEL_DIR (two on one folder drift apart silently)"])
    _HELD.append(lock)
    if not settings.has_basic_auth and settings.allow_unauthenticated:
        logging.getLogger(__name__).warning("ALLOW_UNAUTHENTICATED=true: %s:%s serves anyone who reaches it",
                                            settings.host, settings.port)
    # Fail fast, with a clear message, before serving: when no model can serve any project.
    # One missing model only disables its modality (reported in /health and to its projects).
    problems = {}
    for modality, model in settings.embedding_models.items():
        try:
            check_embedding_model(modality, model)
        except ModelUnavailableError as exc:
            problems[modality] = exc
            print(f"\nWARNING: {modality} projects cannot run: {exc}\n", file=sys.stderr)
    if len(problems) == len(settings.embedding_models):
        print("ERROR: no embedding model is available; see the warnings above.", file=sys.stderr)
        sys.exit(2)
    app = create_app(settings)
    # SystemExit unwinds waitress's loop, which closes the listening socket on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    waitress.serve(app, host=settings.host, port=settings.port, threads=settings.threads,
                   connection_limit=CONNECTION_LIMIT, channel_timeout=IDLE_TIMEOUT_S,
                   max_request_body_size=settings.max_request_bytes + BODY_SLACK_BYTES, ident="clip-vector-queue")


def _stop(problems: list[str]) -> None:
    """Exit with status 2 and one ERROR line per problem, if there are any."""
    if problems:
        print("".join(f"\nERROR: {problem}\n" for problem in problems), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
