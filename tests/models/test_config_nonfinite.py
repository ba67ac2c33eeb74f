"""ModelConfig refuses settings that would make every output NaN (issue 27, item 5)."""

from __future__ import annotations

import math

import pytest
import torch

from biolm.errors import ConfigError
from biolm.models.backbone import BioLM
from biolm.models.config import ModelConfig

SMALL = dict(vocab_size=11, d_model=16, n_layers=1, num_heads=2)


@pytest.mark.parametrize(
    "setting, value",
    [
        ("norm_eps", -1.0),
        ("norm_eps", 0.0),
        ("norm_eps", math.nan),
        ("norm_eps", math.inf),
        ("norm_eps", 1e-50),  # 0 in float32
        ("gate_soft_cap", math.inf),
        ("gate_soft_cap", math.nan),
        ("gate_soft_cap", -1.0),
        ("gate_soft_cap", 1e-50),
        ("ffn_factor", math.nan),
        ("proj_factor", math.inf),
        ("qk_dim_factor", math.nan),
        ("v_dim_factor", 0.0),
    ],
)
def test_settings_that_make_outputs_nonfinite_are_refused(setting, value):
    with pytest.raises(ConfigError, match=f"model.{setting} must be"):
        ModelConfig(**SMALL, **{setting: value})


def test_the_limits_themselves_are_accepted_and_finite():
    """norm_eps at float32's smallest normal number, a cap of 0 (none): finite outputs on a constant input."""
    config = ModelConfig(**SMALL, pattern="x", norm_eps=1.1754943508222875e-38, gate_soft_cap=0.0)
    torch.manual_seed(0)
    model = BioLM(config).eval()
    with torch.no_grad():
        logits = model(torch.full((1, 8), 6)).logits
    assert torch.isfinite(logits).all()
