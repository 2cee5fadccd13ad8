"""Bounds on requests that hold a server thread while they wait.

The backend serves requests from a fixed pool of threads (waitress), and Label
Studio gives a webhook 1 s and never resends it. A request that may block (an admin
waiting for the next batch, /predict embedding images first) takes a slot; when all slots
of its kind are taken it does not wait but answers at once, so such requests can never
hold every thread and leave webhooks queueing behind them.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class WaitSlots:
    """At most `size` requests of one kind may wait at a time."""

    def __init__(self, size: int):
        self.size = size
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """`with slots.slot() as may_wait:` - False when every slot is taken (never blocks)."""
        taken = self._slots.acquire(blocking=False)
        try:
            yield taken
        finally:
            if taken:
                self._slots.release()


def wait_slots(threads: int) -> int:
    """Slots per kind of waiting request: a quarter of the threads, so two kinds leave half to webhooks."""
    return max(1, threads // 4)
