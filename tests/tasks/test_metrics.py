"""Metrics against answers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biolm.tasks.metrics import (
    classification_metrics,
    regression_metrics,
    score_for_selection,
    summarize,
)


def test_binary_classification_metrics():
    y = np.array([0, 0, 1, 1])
    # Predicted classes 0, 1, 1, 1; the positive-class scores rank every positive above every negative.
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    m = classification_metrics(y, proba)
    assert m["accuracy"] == pytest.approx(0.75)
    # MCC = (TP*TN - FP*FN) / sqrt(...) = (2*1 - 1*0) / sqrt(3*2*1*2) = 2 / sqrt(12)
    assert m["mcc"] == pytest.approx(2 / math.sqrt(12))
    assert m["auroc"] == pytest.approx(1.0)


def test_auroc_counts_ties_and_misorderings():
    y = np.array([0, 1, 0, 1])
    proba = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5], [0.1, 0.9]])
    # Pairs (pos, neg): (0.4, 0.8) wrong, (0.4, 0.5) wrong, (0.9, 0.8) right, (0.9, 0.5) right -> 2/4.
    assert classification_metrics(y, proba)["auroc"] == pytest.approx(0.5)


def test_multiclass_auroc_is_one_vs_rest_and_nan_for_one_class():
    y = np.array([0, 1, 2, 0, 1, 2])
    perfect = np.eye(3)[y] * 0.7 + 0.1
    m = classification_metrics(y, perfect)
    assert m["accuracy"] == 1.0 and m["mcc"] == pytest.approx(1.0) and m["auroc"] == pytest.approx(1.0)
    shuffled = np.eye(3)[[1, 2, 0, 1, 2, 0]] * 0.7 + 0.1
    assert classification_metrics(y, shuffled)["auroc"] == pytest.approx(0.25)
    assert math.isnan(classification_metrics(np.array([1, 1]), np.array([[0.3, 0.7], [0.6, 0.4]]))["auroc"])


def test_regression_metrics():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    m = regression_metrics(y, np.array([10.0, 20.0, 30.0, 25.0]))
    assert m["spearman"] == pytest.approx(0.8)  # one swapped pair among four ranks: 1 - 6*2/(4*15)
    assert regression_metrics(y, y + 1)["rmse"] == pytest.approx(1.0)
    assert math.isnan(regression_metrics(y, np.zeros(4))["spearman"])


def test_selection_score_and_summary():
    assert score_for_selection({"rmse": 2.0}, "rmse") == -2.0
    assert score_for_selection({"mcc": float("nan")}, "mcc") == -math.inf
    s = summarize([{"a": 1.0}, {"a": 3.0}])["a"]
    assert s["mean"] == 2.0 and s["sd"] == pytest.approx(math.sqrt(2)) and s["values"] == [1.0, 3.0]
    assert summarize([{"a": 5.0}])["a"]["sd"] == 0.0
