"""The linear head on frozen, unit-norm embeddings.

`LinearHead` follows scikit-learn's estimator conventions: `__init__` stores
hyperparameters, `fit` returns self, learned state ends in `_`, and using an
unfitted head raises `NotFittedError`. Its `coef_` is the query vector W.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import numpy as np
import scipy.optimize
import scipy.special
import torch
from threadpoolctl import ThreadpoolController

from .errors import NotFittedError

# A logit spread (max - min over the rows scored) below this ranks nothing: a head fitted on
# negatives alone spreads ~1e-6 in a direction set by where the solver started; any head with
# a positive, a soft rating or a prompt spreads > 0.1.
FLAT_SPREAD = 1e-3


def is_flat(logits: np.ndarray) -> bool:
    """Whether a head's logits (n,) over some rows rank nothing (spread below `FLAT_SPREAD`).

    A head fitted on negatives alone orders tasks by a direction of |w| ~ 1e-6 that depends on
    where the solver started, not on the ratings (spam at 1%, 30 negatives: test AP 0.30 refitted
    from zero, 0.42 from the head of the first 20; base rate 0.32). Selection and metrics treat
    such scores as tied; pre-annotations keep them as they are (tiny and equal to the eye), so
    that Label Studio's sort by score does not fall back to import order.
    """
    return len(logits) == 0 or float(np.ptp(logits)) < FLAT_SPREAD


@dataclass(frozen=True)
class Prior:
    """A zero-shot score to start from: logit = scale * (x . direction - center) / spread.

    direction : (d,) unit vector, e.g. a prompt's CLIP text embedding.
    center, spread : where the pool's scores along `direction` sit and how far they
        spread, so `scale` is in logit units whatever the embedding model.
    """

    direction: np.ndarray
    center: float
    spread: float
    scale: float = 2.0

    @classmethod
    def calibrate(cls, direction: np.ndarray, X_reference: np.ndarray, positive_rate: float = 0.1, scale: float = 2.0) -> "Prior":
        """Centre so the top `positive_rate` of `X_reference` (m, d) scores above 0.5; logit spread `scale`."""
        direction = np.asarray(direction, dtype=np.float64)
        direction = direction / np.linalg.norm(direction)
        scores = np.asarray(X_reference, dtype=np.float64) @ direction
        spread = float(scores.std()) if len(scores) > 1 and scores.std() > 1e-6 else 1.0
        center = float(np.quantile(scores, 1.0 - positive_rate)) if len(scores) else 0.0
        return cls(direction.astype(np.float32), center, spread, scale)

    def feature(self, X: np.ndarray) -> np.ndarray:
        """The standardised prior score (n,) float64 for X (n, d)."""
        return (np.asarray(X, dtype=np.float64) @ self.direction.astype(np.float64) - self.center) / self.spread

    def head(self) -> "LinearHead":
        """The head that scores exactly like the prior (used before any rating)."""
        coef = self.scale * self.direction.astype(np.float64) / self.spread
        return LinearHead.from_weights(coef, -self.scale * self.center / self.spread)


class LinearHead:
    """Logistic regression with soft targets, optionally on top of a prior score.

    The logit is ``alpha * prior.feature(x) + w . (x - mu) / sigma + b``: the prior's
    weight alpha is pulled towards the prior's own scale, and w towards 0. Features are
    centred and scaled by one global factor sigma (not per dimension, which would
    distort the cosine geometry W is queried with), so `l2` means the same for any
    embedding model. Targets y lie in [-1, 1]: -1 and +1 are hard labels, values between
    are soft (0 = "unsure" pulls the logit to 0). Solved with SciPy's L-BFGS-B.

    Parameters
    ----------
    l2 : pull of w towards 0 (larger: fewer departures from the prior).
    prior_l2 : pull of alpha towards the prior's scale (larger: trust the prompt longer).
    max_iter : L-BFGS iteration budget per fit.
    """

    def __init__(self, l2: float = 0.3, prior_l2: float = 1.0, max_iter: int = 100):
        self.l2 = l2
        self.prior_l2 = prior_l2
        self.max_iter = max_iter

    def fit(
        self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None, prior: Prior | None = None,
        init: "LinearHead | None" = None,
    ) -> "LinearHead":
        """Fit on `X` (n, d) float, `y` (n,) in [-1, 1]; optional `sample_weight` (n,) >= 0.

        `init`: a fitted head (e.g. the previous refit's) to start the solver from. The
        objective is convex, so this changes the result only within the solver's
        tolerance, and a refit after a few more ratings needs fewer iterations.
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] == 0:
            raise ValueError(f"need X (n, d) and y (n,) with n > 0, got {X.shape} and {y.shape}")
        if not np.all(np.abs(y) <= 1.0):
            raise ValueError("targets must lie in [-1, 1]")
        weights = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)

        center = X.mean(axis=0)
        sigma = float(np.sqrt(((X - center) ** 2).sum(axis=1).mean())) if len(X) > 1 else 1.0
        sigma = sigma if sigma > 1e-6 else 1.0
        Z = torch.from_numpy((X - center) / sigma)
        f = torch.from_numpy(prior.feature(X) if prior is not None else np.zeros(len(y)))
        alpha0 = float(prior.scale) if prior is not None else 0.0
        targets = torch.from_numpy((y + 1.0) / 2.0)
        s = torch.from_numpy(weights)

        d = X.shape[1]
        # theta = (w, b, alpha): alpha only with a prior.
        w0, b0, a0 = _solver_start(init, prior, center, sigma, d, alpha0)
        theta0 = np.concatenate([w0, [b0]] + ([[a0]] if prior is not None else []))

        @torch.no_grad()
        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            # Weighted soft-target logistic loss + penalties, with its gradient written out
            # (torch for the products: one thread, see _one_thread).
            t = torch.from_numpy(theta)
            w, b = t[:d], t[d]
            alpha = t[d + 1] if prior is not None else alpha0
            logits = Z @ w + alpha * f + b
            loss = torch.sum(s * (torch.nn.functional.softplus(logits) - targets * logits))
            loss = loss + 0.5 * self.l2 * torch.dot(w, w) + 0.5 * self.prior_l2 * (alpha - alpha0) ** 2
            residual = s * (torch.sigmoid(logits) - targets)
            grad = [Z.T @ residual + self.l2 * w, residual.sum().reshape(1)]
            if prior is not None:
                grad.append((f @ residual + self.prior_l2 * (alpha - alpha0)).reshape(1))
            return float(loss), torch.cat(grad).numpy()

        # SciPy's L-BFGS-B (Fortran) rather than torch.optim.LBFGS, whose Python two-loop
        # recursion cost 4-5x the objective itself at this size (measured, 500 rows x 384).
        with _one_thread():
            result = scipy.optimize.minimize(objective, theta0, jac=True, method="L-BFGS-B",
                                             options={"maxiter": self.max_iter, "gtol": 1e-7, "ftol": 1e-12})
        # Fold the scaling and the prior back into one weight vector over raw embeddings.
        coef = result.x[:d] / sigma
        intercept = float(result.x[d]) - float(coef @ center)
        if prior is not None:
            a = float(result.x[d + 1])
            coef = coef + a * prior.direction.astype(np.float64) / prior.spread
            intercept -= a * prior.center / prior.spread
            self.prior_weight_ = a / prior.scale  # 1.0: the prompt counts as much as at zero shot
        self.coef_ = coef.astype(np.float32)
        self.intercept_ = intercept
        self.n_iter_ = int(result.nit)
        return self

    @classmethod
    def from_weights(cls, coef: np.ndarray, intercept: float, **hyperparameters) -> "LinearHead":
        """Rebuild a fitted head from stored weights."""
        head = cls(**hyperparameters)
        head.coef_ = np.asarray(coef, dtype=np.float32)
        head.intercept_ = float(intercept)
        return head

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits w.x + b for X (n, d); returns (n,) float64.

        w.x in float32 (fast, and exact enough), + b in float64: a head fitted on negatives
        alone has |w| ~ 1e-6 and b ~ -20, where a float32 sum gives every row the same
        logit and leaves the ranking to row order.
        """
        self._check_fitted()
        return (np.asarray(X, dtype=np.float32) @ self.coef_).astype(np.float64) + self.intercept_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(relevant) for X (n, d); returns (n,) float32 in [0, 1]."""
        return _sigmoid(self.decision_function(X))

    def ranking_scores(self, X: np.ndarray) -> np.ndarray:
        """P(relevant) for X (n, d) as float64, for rankings and metrics: a flat head (`is_flat` over
        X) gives every row the same score, their mean, as it ranks nothing."""
        logits = self.decision_function(X)
        probabilities = _sigmoid(logits).astype(np.float64)  # float32 first, as `predict_proba` gives them
        return np.full(len(logits), probabilities.mean()) if is_flat(logits) and len(logits) else probabilities

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("the head has no weights yet: give the project a prompt or rate some tasks")


def _solver_start(init: "LinearHead | None", prior: Prior | None, center: np.ndarray, sigma: float, dim: int,
                  alpha0: float) -> tuple[np.ndarray, float, float]:
    """(w, b, alpha) in the solver's centred, scaled coordinates that score like `init` (zeros without one)."""
    if init is None or not hasattr(init, "coef_") or init.coef_.shape != (dim,):
        return np.zeros(dim), 0.0, alpha0
    coef, intercept, alpha = init.coef_.astype(np.float64), float(init.intercept_), alpha0
    if prior is not None:
        alpha = float(getattr(init, "prior_weight_", 1.0)) * prior.scale
        coef = coef - alpha * prior.direction.astype(np.float64) / prior.spread
        intercept += alpha * prior.center / prior.spread
    return coef * sigma, intercept + float(coef @ center), alpha


@lru_cache(maxsize=1)
def _blas_threads() -> ThreadpoolController:
    # Built once: finding the loaded BLAS libraries costs ~6 ms, as much as a small fit.
    return ThreadpoolController()


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run the fit's many small operations on the calling thread alone.

    Each op on a few hundred rows is too small to split, but torch's intra-op pool and
    OpenBLAS (SciPy's solver, NumPy's products) split it anyway and wait for every
    thread at each op; when the cores are busy (CLIP embedding, Label Studio, other
    processes) that wait dominates. Measured on 2 busy cores: 50 ratings 35-50 ms with
    one torch thread against 240-330 ms with two; 300 ratings 37 ms with one BLAS thread
    against 330-640 ms with two. Torch's count is per calling thread (OpenMP), so CLIP
    in other threads keeps its pool; the BLAS limit is process-wide for the fit's
    duration (CLIP runs on torch, not on BLAS).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _blas_threads().limit(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(previous)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # SciPy's expit: no overflow, and tiny probabilities keep their order (a tanh form rounds them to 0).
    return scipy.special.expit(np.asarray(z, dtype=np.float64)).astype(np.float32)
