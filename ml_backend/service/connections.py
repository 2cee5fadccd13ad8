"""One ML connection per backend per project: find this backend's connections and hooks, report repeats.

Two connections to one backend (the same URL spelled twice) make Label Studio deliver
every event twice and call /setup with two sets of parameters. The backend counts each
event once anyway (the ledger is keyed by Label Studio's ids), takes its parameters from
one connection only (the oldest), and reports the repeat in /health and the project
status; `scripts.connect_project` removes the extra connection and its webhook.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..adapters.ls_gateway import LabelStudioGateway
from ..adapters.ml_connections import WEBHOOK_ACTIONS, BackendIdentity, Connection, Hook, repeated_actions

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ConnectionReport:
    """What Label Studio has pointing at this backend for one project (kept in `LabelStudioRecords` as JSON)."""

    connections: list[int]
    urls: list[str]
    params: list[Any]                       # each connection's extra params, in `connections` order
    webhooks: list[int]
    repeated_actions: dict[str, int] = field(default_factory=dict)
    checked_at: float = 0.0
    # The project had a connection here and has none now: its admin detached the backend, which then
    # writes nothing to the project (no webhook made again, no tab, predictions or model version).
    detached: bool = False

    @property
    def primary_params(self) -> Any:
        """The parameters that count: the oldest connection's."""
        return self.params[0] if self.params else None

    @property
    def warning(self) -> str | None:
        if self.detached:
            return ("no ML connection of this project leads to this backend any more: it no longer writes to the "
                    "project (tab, predictions, model version). Connect it again to resume")
        problems = []
        if len(self.connections) > 1:
            problems.append(
                f"{len(self.connections)} ML connections lead to this backend (ids {self.connections}: {self.urls}); "
                f"parameters are taken from connection {self.connections[0]} only"
            )
        if self.repeated_actions:
            times = ", ".join(f"{a} x{n}" for a, n in sorted(self.repeated_actions.items()))
            problems.append(f"webhooks {self.webhooks} deliver events more than once ({times}); each still counts once")
        if not problems:
            return None
        fix = "Fix: .venv/bin/python -m scripts.connect_project --project <id> (keeps one connection and its webhook)"
        return "; ".join(problems) + ". " + fix

    def as_state(self) -> dict[str, Any]:
        return {**asdict(self), "warning": self.warning}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> "ConnectionReport | None":
        if not state:
            return None
        return cls(**{k: state[k] for k in ("connections", "urls", "params", "webhooks", "repeated_actions", "checked_at")},
                   detached=bool(state.get("detached", False)))


def find_connections(gateway: LabelStudioGateway, identity: BackendIdentity, project: int,
                      backend_url: str | None, before: "ConnectionReport | None" = None) -> ConnectionReport:
    """List the project's connections and webhooks that lead here; make sure the events we need reach us once.

    `before`: the previous check's report. When the connections it found here are no longer listed at all,
    the admin deleted them: the report says `detached` (and stays so until a connection leads here again),
    and the webhook the admin may have deleted too is not made again. A connection still listed that merely
    failed the probe (this backend briefly unreachable at its URL) does not detach it."""
    listed = gateway.ml_connections(project)
    ours = sorted((c for c in listed if identity.is_me(c.url)), key=lambda c: c.id)
    if not ours and len(listed) == 1 and not backend_url:
        # Label Studio reaches us by a URL we cannot reach ourselves (a proxy): the one connection is ours.
        ours = listed
    deleted = before is not None and (before.detached or (
        bool(before.connections) and not {c.id for c in listed} & set(before.connections)))
    if not ours and deleted:
        log.warning("project %s: no ML connection leads here any more: writing nothing to it until one does", project)
        return ConnectionReport(connections=[], urls=[], params=[], webhooks=[], checked_at=time.time(), detached=True)
    urls = ([backend_url] if backend_url else []) + [c.url for c in ours]
    hooks: list[Hook] = gateway.ensure_webhook(project, urls)
    report = ConnectionReport(
        connections=[c.id for c in ours], urls=[c.url for c in ours], params=[_params(c) for c in ours],
        webhooks=sorted(h.id for h in hooks), repeated_actions=repeated_actions(hooks, WEBHOOK_ACTIONS),
        checked_at=time.time(),
    )
    if report.warning:
        log.warning("project %s: %s", project, report.warning)
    return report


def _params(connection: Connection) -> Any:
    return connection.extra_params if connection.extra_params not in ("", None) else {}
