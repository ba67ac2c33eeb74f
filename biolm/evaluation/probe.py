"""Frozen-embedding probes: logistic regression or ridge regression on standardised embeddings.

The regularisation strength is chosen on the validation rows (the task's primary metric, see
`metrics.PRIMARY`); the probe is then the one fitted on the training rows with that strength.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from biolm.tasks.metrics import PRIMARY, classification_metrics, regression_metrics, score_for_selection

# Inverse strengths C for logistic regression; ridge uses alpha = 1 / C over the same grid.
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def _estimator(task: str, c: float, seed: int) -> Pipeline:
    if task == "classification":
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    else:
        model = Ridge(alpha=1.0 / c, random_state=seed)
    return make_pipeline(StandardScaler(), model)


def predict(task: str, estimator: Pipeline, x: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """[N, K] class probabilities (classification; classes absent from training get 0) or [N] values."""
    if task != "classification":
        return estimator.predict(x)
    proba = estimator.predict_proba(x)
    full = np.zeros((len(x), n_classes or proba.shape[1]))
    full[:, estimator.classes_] = proba
    return full


def evaluate(task: str, y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """The task's metrics of predictions from `predict`."""
    if task == "classification":
        return classification_metrics(y, prediction)
    return regression_metrics(y, prediction)


def fit_probe(
    task: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray | None,
    y_valid: np.ndarray | None,
    *,
    seed: int = 0,
    n_classes: int | None = None,
    grid: tuple[float, ...] = C_GRID,
) -> tuple[Pipeline, float]:
    """Fit a probe; returns (estimator, chosen C). Without validation rows, C = 1.

    Args:
        task: "classification" or "regression".
        x_train: [N, d] embeddings; y_train: [N] class indices or values.
        x_valid, y_valid: the validation rows that choose C (may be None or empty).
    """
    if x_valid is None or len(x_valid) == 0:
        grid = (1.0,)
    best, best_c, best_score = None, grid[0], -np.inf
    for c in grid:
        with warnings.catch_warnings():
            # A weakly regularised fit may stop short; it is then simply scored lower on validation.
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator = _estimator(task, c, seed).fit(x_train, y_train)
        if len(grid) == 1:
            return estimator, c
        metrics = evaluate(task, y_valid, predict(task, estimator, x_valid, n_classes))
        score = score_for_selection(metrics, PRIMARY[task])
        if best is None or score > best_score:
            best, best_c, best_score = estimator, c, score
    return best, best_c
