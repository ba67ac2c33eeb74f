"""Probes on precomputed embeddings with a known answer."""

from __future__ import annotations

import numpy as np

from biolm.evaluation.probe import C_GRID, evaluate, fit_probe, predict


def _blobs(n: int, seed: int, d: int = 8):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.eye(3, d) * 4.0
    return centres[y] + rng.normal(size=(n, d)), y


def test_logistic_probe_learns_separable_classes():
    (xt, yt), (xv, yv), (xs, ys) = _blobs(150, 0), _blobs(50, 1), _blobs(100, 2)
    estimator, c = fit_probe("classification", xt, yt, xv, yv, n_classes=3)
    assert c in C_GRID
    m = evaluate("classification", ys, predict("classification", estimator, xs, 3))
    assert m["accuracy"] > 0.9 and m["auroc"] > 0.95


def test_missing_training_class_gets_zero_probability():
    x, y = _blobs(120, 3)
    keep = y != 2
    estimator, _ = fit_probe("classification", x[keep], y[keep], None, None, n_classes=3)
    proba = predict("classification", estimator, x, 3)
    assert proba.shape == (120, 3) and np.all(proba[:, 2] == 0) and np.allclose(proba.sum(1), 1)


def test_ridge_probe_chooses_strength_on_validation():
    rng = np.random.default_rng(0)
    w = rng.normal(size=20)

    def draw(n):
        x = rng.normal(size=(n, 20))
        return x, x @ w + 0.1 * rng.normal(size=n)

    (xt, yt), (xv, yv), (xs, ys) = draw(40), draw(40), draw(100)
    estimator, c = fit_probe("regression", xt, yt, xv, yv)
    # With little noise, the weakest regularisation fits best; alpha = 1000 would shrink everything.
    assert c >= 1.0
    m = evaluate("regression", ys, predict("regression", estimator, xs))
    assert m["spearman"] > 0.95 and m["rmse"] < 0.5 * ys.std()
