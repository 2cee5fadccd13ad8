"""Refit: a new head version from all current ratings, when they (or the prompt, or the head's
parameters) changed.

The head is a logistic regression on the frozen embeddings (`core.head`), fitted by the
project's recipe (`core.training.refit`, the function the benchmarks call too), warm-started
from the current head: the ratings, a fresh sample of unrated tasks as weak negatives,
and the prompt (by `head.prompt_role`: one heavily weighted positive, the default, or a
prior score W starts from). Each version is saved in the ledger, so a
restarted loop goes on from the last one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .embedding import Embedder
from .errors import StaleVectorsError
from .evaluation import CROSS_FIT_FOLDS
from .head import LinearHead, Prior
from .ledger import Ledger
from .params import ProjectParams
from .store import VectorStore
from .strategies import Pool
from .training import cross_fitted_scores, prompt_prior, refit

log = logging.getLogger(__name__)

CALIBRATION_SAMPLE = 2000


@dataclass(frozen=True)
class HeadVersion:
    """A fitted head and its version number (1, 2, ...)."""

    version: int
    head: LinearHead
    n_ratings: int


class HeadRefit:
    """The refit step of `ActiveLoop` (a mixin: the loop holds `project`, `params`, `ledger`,
    `store` and `embedder`, gives `pool`, and calls `_start_refits` once)."""

    project: int
    params: ProjectParams
    ledger: Ledger
    store: VectorStore
    embedder: Embedder
    pool: Callable[..., tuple[np.ndarray, Pool]]

    def _start_refits(self) -> None:
        self._head: HeadVersion | None = None
        self._prompt_vector: np.ndarray | None = None
        self._refit_lock = threading.Lock()

    def current_head(self) -> HeadVersion | None:
        """The latest head version, or None before any prompt or rating."""
        if self._head is None:
            stored = self.ledger.latest_head(self.project, self.embedder.model_id)
            if stored is not None:
                self._head = HeadVersion(stored.version, LinearHead.from_weights(stored.coef, stored.intercept), stored.n_ratings)
        return self._head

    def head_version(self) -> int:
        """The current head's version number; 0 before any head."""
        head = self.current_head()
        return head.version if head else 0

    def refit_if_needed(self, on_refit: Callable[[], None] | None = None) -> HeadVersion | None:
        """Refit from all current ratings if they, the prompt or the head params changed.

        `on_refit` is called just before fitting (progress reporting). Returns the new
        head version, or None when nothing changed (or nothing to fit yet).
        """
        with self._refit_lock:
            ratings = self.ledger.ratings(self.project)
            rated = [t for t in ratings if t in self.store]
            fit_key = self._fit_key(rated, ratings)
            if not rated and not self.prompt_usable():
                # No ratings and no usable prompt (a prompt, but no vectors yet): a key of its own, so that
                # once vectors come back the prompt's head is fitted again instead of matching this one.
                fit_key += ":flat"
            stored = self.ledger.latest_head(self.project, self.embedder.model_id)
            if stored is not None and stored.fit_key == fit_key:
                if (stored.version == self.ledger.latest_head(self.project).version
                        and stored.version > self.ledger.version_floor(self.project)):
                    return None
                # Another model's head came after this one (the model was switched away and back), or an earlier
                # ledger of the project published versions as high (`Ledger.raise_version_floor`): the same head
                # again, as a new version, so that versions only go up and what is pushed is this one's.
                head = LinearHead.from_weights(stored.coef, stored.intercept)
                return self._save(head, fit_key, len(rated))
            if on_refit is not None:
                on_refit()
            prior = self._prompt_prior()  # the prompt's direction; `fit_head` uses it as an example or a prior
            if rated:
                head = self._fit(rated, ratings, prior)
            elif prior is not None:
                head = prior.head()
            elif stored is not None and not ratings:
                # Every rating was taken back (not merely waiting for its vectors): a head that knows
                # nothing replaces the one fitted on them (every score 0.5, a flat head, so the batch
                # goes back to cluster picks).
                head = LinearHead.from_weights(np.zeros_like(stored.coef), 0.0)
            else:
                return None
            return self._save(head, fit_key, len(rated))

    def _save(self, head: LinearHead, fit_key: str, n_ratings: int) -> HeadVersion:
        version = self.ledger.save_head(self.project, head.coef_, head.intercept_, fit_key, n_ratings, self.embedder.model_id)
        self._head = HeadVersion(version, head, n_ratings)
        log.info("project %s: head v%d fitted on %d ratings", self.project, version, n_ratings)
        return self._head

    def _fit(self, rated: list[int], ratings: dict[int, float], prior: Prior | None) -> LinearHead:
        X, y, pool = self._training_data(rated, ratings)
        rng = np.random.default_rng([self.project, len(rated), len(pool.available)])
        previous = self.current_head()  # a start for the solver: same optimum, fewer iterations
        return refit(X, y, pool.vectors, pool.available, self.params.head, rng, prior=prior,
                     init=previous.head if previous else None)

    def _training_data(self, rated: list[int], ratings: dict[int, float]) -> tuple[np.ndarray, np.ndarray, Pool]:
        """The rated tasks' vectors and ratings, and the pool without them (where background negatives come from)."""
        present, X = self.store.present_vectors(rated)
        if len(present) != len(rated):  # the store switched to another model since `rated` was read
            raise StaleVectorsError(f"project {self.project}: {len(rated) - len(present)} rated tasks lost their "
                                    "vectors during the refit (the embedding model changed); it will run again")
        _, pool = self.pool(exclude=rated)
        return X, np.array([ratings[t] for t in rated]), pool

    def held_out_scores(self, task_ids: np.ndarray) -> np.ndarray:
        """(len(task_ids),) each rated task's score from the project's recipe refit without it (`CROSS_FIT_FOLDS`-fold
        cross-fitting, `core.training.cross_fitted_scores`), NaN for the others: where the current head would
        place a rated task had it not been trained on its rating (`core.evaluation.estimate_head`)."""
        scores = np.full(len(task_ids), np.nan)
        current = self.current_head()
        ratings = self.ledger.ratings(self.project)
        position = {int(t): i for i, t in enumerate(task_ids)}
        rated = [t for t in ratings if t in self.store and t in position]
        if current is None or not rated:
            return scores
        X, y, pool = self._training_data(rated, ratings)
        rng = np.random.default_rng([self.project, len(rated), 17])
        held = cross_fitted_scores(X, y, pool.vectors, pool.available, self.params.head, rng,
                                   prior=self._prompt_prior(), init=current.head, folds=CROSS_FIT_FOLDS)
        scores[[position[t] for t in rated]] = held
        return scores

    def prompt_usable(self) -> bool:
        """Whether refits start from the prompt: one is set, the model embeds text, and the store has vectors."""
        return bool(self.params.prompt) and self.embedder.can_embed_text and len(self.store) > 0

    def _prompt_prior(self) -> Prior | None:
        if not self.prompt_usable():
            return None
        if self._prompt_vector is None:
            self._prompt_vector = self.embedder.embed_texts([self.params.prompt])[0]
        _, pool = self.store.pool()
        if pool.vectors.shape[1:] != self._prompt_vector.shape:
            # read once, after the check above: a model switch may have emptied or refilled the store meanwhile
            raise StaleVectorsError(f"project {self.project}: the store's vectors changed model during the refit; "
                                    "it will run again")
        rng = np.random.default_rng(self.project)
        sample = rng.choice(len(pool.vectors), size=min(CALIBRATION_SAMPLE, len(pool.vectors)), replace=False)
        return prompt_prior(self._prompt_vector, pool.vectors[np.sort(sample)], self.params.head)

    def _fit_key(self, rated: list[int], ratings: dict[int, float]) -> str:
        # What a head version and its predictions were made from; an identical key means a new
        # version would change nothing. `preselect_rating` changes only the predictions: a new
        # version re-pushes every task's prediction in the new form.
        # The store's generation: vectors made afresh (another model or field) call for a new head even when
        # the ratings are the same (left out while 0, so that keys from before it counted stay valid).
        made_from = [self.params.prompt, self.params.head.model_dump(), self.params.preselect_rating]
        if self.store.generation:
            made_from.append(self.store.generation)
        digest = hashlib.sha256(json.dumps([sorted((t, ratings[t]) for t in rated), *made_from]).encode()).hexdigest()[:16]
        return f"{len(rated)}:{digest}"
