"""Run the backend: `python -m ml_backend.service` (gunicorn, one process, port 9090).

One process on purpose: the embedded Chroma client and the SQLite ledger are safe
across threads but not across processes, and the worker thread must be unique.
Scale out with a Chroma server (CHROMA_HOST) and one backend process per project group.
"""

from __future__ import annotations

import logging
import sys

from gunicorn.app.base import BaseApplication

from ..core.embedding import check_embedding_model
from ..core.errors import ModelUnavailableError
from . import model_dir
from .app import create_app
from .settings import ServiceSettings, SettingsError

_HELD = []  # the MODEL_DIR lock's file, open for the process's lifetime (the forked worker shares it)


class _Gunicorn(BaseApplication):
    def __init__(self, settings: ServiceSettings, options: dict):
        self._settings, self._options = settings, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        # Built in the worker process, after fork: threads and the Chroma client do not survive a fork.
        return create_app(self._settings)


def main() -> None:
    try:
        settings = ServiceSettings.from_env()
    except SettingsError as exc:
        _stop(exc.problems)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Secure by default (an open port needs credentials unless the admin says otherwise), and a
    # device, MODEL_DIR or params file that cannot work is said before the server forks.
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
    # Fail fast, with a clear message, before forking: when no model can serve any project.
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
    _Gunicorn(settings, {
        "bind": f"{settings.host}:{settings.port}",
        "workers": 1, "worker_class": "gthread", "threads": settings.threads,
        "timeout": 300, "accesslog": "-", "loglevel": settings.log_level.lower(),
        # gunicorn's default line plus the request's duration in seconds: Label Studio gives a webhook 1 s.
        "access_log_format": '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)s',
    }).run()


def _stop(problems: list[str]) -> None:
    """Exit with status 2 and one ERROR line per problem, if there are any."""
    if problems:
        print("".join(f"\nERROR: {problem}\n" for problem in problems), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
