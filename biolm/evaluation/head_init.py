"""A fine-tuning head that starts as the linear probe of the frozen backbone (LP-FT).

Fine-tuning from a random head spends its first epochs moving the head while the gradients that
reach the backbone are noise, and can distort good pretrained features before the head is useful
(Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-
Distribution"). Starting from the probe of :mod:`biolm.evaluation.probe` (fitted on the same pooled
features, strength chosen on the validation rows) begins fine-tuning where the probe ends.

The probe is a scikit-learn pipeline ``StandardScaler -> LogisticRegression | Ridge``; its affine
map is folded into the head's ``nn.Linear`` here, so that before the first step the head's outputs
equal the probe's (tests check it).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.pipeline import Pipeline

# Logit bias of a class that the training rows never show: the probe gives it probability 0.
ABSENT_CLASS_BIAS = -30.0


def probe_as_linear(
    probe: Pipeline, task: str, n_outputs: int, target_mean: float = 0.0, target_sd: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Weight [n_outputs, d] and bias [n_outputs] of a linear head equal to a fitted probe.

    Classification: softmax of the head's logits equals the probe's `predict_proba` (a binary
    logistic regression's decision function becomes the logit of its second class, the first class's
    logit 0). Regression: the head predicts the standardised target, `(prediction - target_mean) /
    target_sd`, as `FineTuneTask` expects.
    """
    scaler, model = probe[0], probe[-1]
    scale = scaler.scale_ if scaler.scale_ is not None else np.ones(scaler.n_features_in_)
    mean = scaler.mean_ if scaler.mean_ is not None else np.zeros(scaler.n_features_in_)
    # w . (x - mean) / scale + b  ==  (w / scale) . x + (b - (w / scale) . mean)
    coef = np.atleast_2d(model.coef_) / scale
    intercept = np.atleast_1d(model.intercept_) - coef @ mean
    d = coef.shape[1]
    if task != "classification":
        return coef / target_sd, (intercept - target_mean) / target_sd
    weight = np.zeros((n_outputs, d))
    bias = np.full(n_outputs, ABSENT_CLASS_BIAS)
    classes = model.classes_.astype(int)
    if len(classes) == 2:
        bias[classes[0]] = 0.0
        weight[classes[1]], bias[classes[1]] = coef[0], intercept[0]
    else:
        weight[classes], bias[classes] = coef, intercept
    return weight, bias


def set_head(head: torch.nn.Linear, weight: np.ndarray, bias: np.ndarray) -> None:
    """Copy a folded probe into `head` (in its own dtype and device)."""
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(weight, dtype=head.weight.dtype))
        head.bias.copy_(torch.as_tensor(bias, dtype=head.bias.dtype))
