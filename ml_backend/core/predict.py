"""Predict: the current head's P(relevant) for tasks (Label Studio's form of it: `adapters.ls_predictions`)."""

from __future__ import annotations

from typing import Callable, Sequence

from .errors import NotFittedError
from .refit import HeadVersion
from .store import VectorStore


class Scoring:
    """The predict step of `ActiveLoop` (a mixin: the loop holds `project` and `store`, and gives `current_head`)."""

    project: int
    store: VectorStore
    current_head: Callable[[], HeadVersion | None]

    def scores(self, task_ids: Sequence[int]) -> dict[int, float]:
        """P(relevant) for embedded tasks among `task_ids`; raises NotFittedError without a head."""
        current = self.current_head()
        if current is None:
            raise NotFittedError(f"project {self.project} has no head yet: set a prompt or rate some tasks")
        present, vectors = self.store.present_vectors(task_ids)
        if not present:
            return {}
        probabilities = current.head.predict_proba(vectors)
        return dict(zip(present, map(float, probabilities)))
