"""The linear head on frozen, unit-norm embeddings.

`LinearHead` follows scikit-learn's estimator conventions: `__init__` stores
hyperparameters, `fit` returns self, learned state ends in `_`, and using an
unfitted head raises `NotFittedError`. Its `coef_` is the query vector W.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import NotFittedError


class LinearHead:
    """Logistic regression with soft targets and an L2 pull towards a prior W.

    Minimises ``sum_i s_i * BCE(sigmoid(w.x_i + b), (y_i + 1) / 2) + l2/2 * ||w - w_prior||^2``
    with L-BFGS. Targets y lie in [-1, 1]: -1 and +1 are hard labels, values between
    are soft ones (0 = "unsure" pulls the logit to 0).

    Parameters
    ----------
    l2 : strength of the pull towards `coef_prior` (towards 0 when no prior is given).
    learning_rate : L-BFGS step size (1.0 with a strong-Wolfe line search is standard).
    max_iter : L-BFGS iteration budget per fit.
    """

    def __init__(self, l2: float = 1.0, learning_rate: float = 1.0, max_iter: int = 100):
        self.l2 = l2
        self.learning_rate = learning_rate
        self.max_iter = max_iter

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        sample_weight: np.ndarray | None = None,
        coef_prior: np.ndarray | None = None,
    ) -> "LinearHead":
        """Fit on `X` (n, d) float, `y` (n,) in [-1, 1]; optional `sample_weight` (n,) >= 0.

        `coef_prior` (d,) is where the L2 penalty pulls W: the prompt's direction, so a
        handful of ratings refines the zero-shot head instead of replacing it.
        """
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] == 0:
            raise ValueError(f"need X (n, d) and y (n,) with n > 0, got {X.shape} and {y.shape}")
        if not np.all(np.abs(y) <= 1.0):
            raise ValueError("targets must lie in [-1, 1]")
        weights = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        prior = np.zeros(X.shape[1]) if coef_prior is None else np.asarray(coef_prior, dtype=np.float64)

        # Centring makes the intercept nearly independent of W, which L-BFGS likes;
        # the shift is folded back into intercept_ below.
        center = np.average(X, axis=0, weights=weights) if weights.sum() > 0 else X.mean(axis=0)
        Xc = torch.from_numpy(X - center)
        targets = torch.from_numpy((y + 1.0) / 2.0)
        s = torch.from_numpy(weights)
        w_prior = torch.from_numpy(prior)
        w = w_prior.clone().requires_grad_(True)
        b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [w, b], lr=self.learning_rate, max_iter=self.max_iter, line_search_fn="strong_wolfe",
            tolerance_grad=1e-7, tolerance_change=1e-10,
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            logits = Xc @ w + b
            data_loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, weight=s, reduction="sum")
            loss = data_loss + 0.5 * self.l2 * torch.sum((w - w_prior) ** 2)
            loss.backward()
            return loss

        optimizer.step(closure)
        coef = w.detach().numpy()
        self.coef_ = coef.astype(np.float32)
        self.intercept_ = float(b.item() - coef @ center)
        self.n_iter_ = int(optimizer.state[w].get("n_iter", 0))
        return self

    @classmethod
    def from_direction(cls, direction: np.ndarray, X_reference: np.ndarray, positive_rate: float = 0.1) -> "LinearHead":
        """A head with no ratings: W along `direction` (e.g. a prompt's text embedding).

        The scale and intercept are calibrated on `X_reference` (a sample of the pool):
        the top `positive_rate` share scores above 0.5 and the logits have spread 2.
        """
        direction = np.asarray(direction, dtype=np.float64)
        direction = direction / np.linalg.norm(direction)
        cosines = np.asarray(X_reference, dtype=np.float64) @ direction
        spread = cosines.std() if len(cosines) > 1 and cosines.std() > 1e-6 else 1.0
        scale = 2.0 / spread
        threshold = np.quantile(cosines, 1.0 - positive_rate) if len(cosines) else 0.0
        return cls.from_weights(scale * direction, -scale * threshold)

    @classmethod
    def from_weights(cls, coef: np.ndarray, intercept: float, **hyperparameters) -> "LinearHead":
        """Rebuild a fitted head from stored weights."""
        head = cls(**hyperparameters)
        head.coef_ = np.asarray(coef, dtype=np.float32)
        head.intercept_ = float(intercept)
        return head

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Logits w.x + b for X (n, d); returns (n,) float32."""
        self._check_fitted()
        return (np.asarray(X, dtype=np.float32) @ self.coef_ + np.float32(self.intercept_)).astype(np.float32)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(relevant) for X (n, d); returns (n,) float32 in [0, 1]."""
        return _sigmoid(self.decision_function(X))

    @property
    def query_vector(self) -> np.ndarray:
        """W normalised to unit length: the vector the store is queried with."""
        self._check_fitted()
        norm = float(np.linalg.norm(self.coef_))
        return self.coef_ / norm if norm > 0 else self.coef_

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("the head has no weights yet: give the project a prompt or rate some tasks")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # tanh form: no overflow warning for large |z|.
    return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)
