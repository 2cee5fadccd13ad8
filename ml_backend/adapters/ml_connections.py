"""Which of a project's ML connections and webhooks lead to one backend, however their URL is spelled.

Label Studio keys a connection, and the webhook it creates with it, by the URL typed in:
`http://127.0.0.1:9090` and `http://localhost:9090/` make two connections to one backend,
and every event then arrives twice. A backend is recognised by its URL up to spelling
(case, default port, trailing slash, loopback aliases) or, where the URL is reachable,
by the instance id its `/health` reports.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar
from urllib.parse import urlsplit

import requests

log = logging.getLogger(__name__)
T = TypeVar("T")

LOOPBACK_NAMES = {"localhost", "ip6-localhost", "0.0.0.0"}
DEFAULT_PORTS = {"http": 80, "https": 443}
PROBE_TIMEOUT_S = 2.0


def normalized_url(url: str) -> str:
    """`url` spelled one way: lower-case scheme and host, explicit port, no trailing slash,
    every loopback address as `loopback`."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # "http://[::1": compare the text as it is
        return url.strip().rstrip("/").lower()
    scheme = (parts.scheme or "http").lower()
    host = (parts.hostname or "").lower()
    if _is_loopback(host):
        host = "loopback"
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number: compare the text as it is
        return url.strip().rstrip("/").lower()
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def webhook_url(backend_url: str) -> str:
    """The URL Label Studio's connection webhook posts to (as Label Studio builds it)."""
    return backend_url.rstrip("/") + "/webhook"


def instance_id_at(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """The instance id the backend at `url` reports in /health, or None (unreachable, or not this backend kind)."""
    try:
        body = requests.get(f"{url.rstrip('/')}/health", timeout=timeout_s).json()
    except (requests.RequestException, ValueError):
        return None
    value = body.get("instance_id") if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None


def load_instance_id(model_dir: Path) -> str:
    """This backend's id, made once and kept in MODEL_DIR (so it survives restarts)."""
    path = Path(model_dir) / "instance_id"
    if not path.exists():
        path.write_text(secrets.token_hex(8))
    return path.read_text().strip()


Probe = Callable[[str], "str | None"]


def same_backend(url_a: str, url_b: str, probe: Probe = instance_id_at) -> bool:
    """Whether two URLs lead to the same backend: equal up to spelling, or reporting the same instance id."""
    if normalized_url(url_a) == normalized_url(url_b):
        return True
    id_a = probe(url_a)
    return id_a is not None and id_a == probe(url_b)


class BackendIdentity:
    """Recognises URLs that lead to this backend process (thread-safe enough: a dict cache)."""

    def __init__(self, instance_id: str, own_url: str | None = None, probe: Probe = instance_id_at):
        self.instance_id = instance_id
        self._own = normalized_url(own_url) if own_url else None
        self._probe = probe
        self._answers: dict[str, bool] = {}

    def is_me(self, url: str) -> bool:
        key = normalized_url(url)
        if key == self._own:
            return True
        if key not in self._answers:
            found = self._probe(url)
            if found is None:  # unreachable now (this server may not listen yet): ask again next time
                return False
            self._answers[key] = found == self.instance_id
        return self._answers[key]


@dataclass(frozen=True)
class Connection:
    """One ML connection of a project, as Label Studio lists it."""

    id: int
    url: str
    extra_params: Any = None

    @classmethod
    def of(cls, record: Any) -> "Connection":
        return cls(int(record.id), str(record.url), record.extra_params)


# The events the backend acts on (service.app's /webhook): imports, task deletions and every change of a rating.
WEBHOOK_ACTIONS = ("TASKS_CREATED", "TASKS_DELETED", "ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")


@dataclass(frozen=True)
class Hook:
    """One project webhook, as Label Studio lists it."""

    id: int
    url: str
    actions: tuple[str, ...]
    all_actions: bool
    active: bool
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, record: Any) -> "Hook":
        headers = record.headers if isinstance(record.headers, dict) else {}
        return cls(int(record.id), str(record.url), tuple(record.actions or ()), bool(record.send_for_all_actions),
                   record.is_active is not False, tuple(sorted((str(k), str(v)) for k, v in headers.items())))

    def covers(self, action: str) -> bool:
        return self.active and (self.all_actions or action in self.actions)


def basic_auth_header(user: str, password: str) -> dict[str, str]:
    """The Authorization header a webhook to a backend behind BASIC_AUTH_USER/BASIC_AUTH_PASS must carry."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def parsed_records(records: Any, parse: Callable[[Any], T], what: str) -> list[T]:
    """`parse` of each listed record; one it cannot read (an id that is not a number, a field of the wrong
    type) is skipped with a warning. Anyone's hook or connection may be odd, and must not stop the sync."""
    if not isinstance(records, list):
        log.warning("Label Studio's %s listing is not a list: read as empty", what)
        return []
    parsed = []
    for record in records:
        try:
            parsed.append(parse(record))
        except (AttributeError, TypeError, ValueError) as exc:
            log.warning("skipping a listed %s Label Studio sent that cannot be read: %s", what, exc)
    return parsed


def hooks_to(backend_urls: Iterable[str], hooks: Iterable[Hook]) -> list[Hook]:
    """The webhooks that post to one of `backend_urls`, up to spelling.

    Webhook URLs are matched, never probed: unlike ML connections they may lead anywhere.
    """
    targets = {normalized_url(webhook_url(u)) for u in backend_urls}
    return [hook for hook in hooks if normalized_url(hook.url) in targets]


def repeated_actions(hooks: Iterable[Hook], actions: Iterable[str]) -> dict[str, int]:
    """Actions that more than one of `hooks` delivers: action -> how many times each event arrives."""
    hooks = list(hooks)
    counts = {action: sum(h.covers(action) for h in hooks) for action in actions}
    return {action: n for action, n in counts.items() if n > 1}
