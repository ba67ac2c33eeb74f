"""Metrics (scikit-learn, SciPy) and their mean and standard deviation over seeds."""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, matthews_corrcoef, mean_squared_error, roc_auc_score

# Whether a larger value is better; used to choose regularisation and checkpoints.
HIGHER_IS_BETTER = {"accuracy": True, "mcc": True, "auroc": True, "spearman": True, "rmse": False}
PRIMARY = {"classification": "mcc", "regression": "spearman"}


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, MCC and AUROC of class probabilities.

    Args:
        y_true: [N] class indices.
        proba: [N, K] class probabilities (rows sum to 1). AUROC is one-vs-rest for K > 2, and NaN when
            `y_true` holds a single class (it is undefined then).
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    pred = proba.argmax(axis=1)
    with warnings.catch_warnings():
        # A test set of one class gives MCC 0 (sklearn's convention) with a warning about the shape.
        warnings.filterwarnings("ignore", message=".*single label was found.*")
        mcc = float(matthews_corrcoef(y_true, pred))
    out = {"accuracy": float(accuracy_score(y_true, pred)), "mcc": mcc}
    if len(np.unique(y_true)) < 2:
        out["auroc"] = math.nan
    elif proba.shape[1] == 2:
        out["auroc"] = float(roc_auc_score(y_true, proba[:, 1]))
    else:
        present = np.unique(y_true)
        # Classes absent from y_true have no ROC curve; score over the present ones, renormalised.
        sub = proba[:, present] / proba[:, present].sum(axis=1, keepdims=True)
        if len(present) == 2:
            out["auroc"] = float(roc_auc_score(y_true == present[1], sub[:, 1]))
        else:
            out["auroc"] = float(roc_auc_score(y_true, sub, multi_class="ovr", labels=present))
    return out


def regression_metrics(y_true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Spearman's rank correlation (NaN for constant predictions) and RMSE."""
    y_true, pred = np.asarray(y_true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    rho = math.nan if np.ptp(pred) == 0 or np.ptp(y_true) == 0 else float(spearmanr(y_true, pred).statistic)
    return {"spearman": rho, "rmse": float(np.sqrt(mean_squared_error(y_true, pred)))}


def score_for_selection(metrics: dict[str, float], name: str) -> float:
    """A value to maximise: the metric (negated when lower is better), NaN counting as worst."""
    value = metrics[name]
    if math.isnan(value):
        return -math.inf
    return value if HIGHER_IS_BETTER[name] else -value


def summarize(runs: list[dict[str, float]]) -> dict[str, dict]:
    """Per metric: mean, sample standard deviation (0 for one run) and the values, over runs."""
    out = {}
    for name in runs[0]:
        values = np.array([r[name] for r in runs], dtype=np.float64)
        out[name] = {
            "mean": float(np.mean(values)),
            "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "values": values.tolist(),
        }
    return out
