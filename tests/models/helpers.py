"""Tiny models with non-trivial gates, shared by the model tests."""

from __future__ import annotations

import torch

from biolm.models import BioLM, ModelConfig
from biolm.models.linear_attention import GatedLinearAttention
from biolm.models.slstm import SLSTMLayer

PATTERNS = ["m", "s", "a", "t", "x", "msatx"]


def tiny_config(pattern: str, **overrides) -> ModelConfig:
    settings = dict(
        vocab_size=11, d_model=32, n_layers=len(pattern), pattern=pattern, num_heads=2, chunk_size=8
    )
    return ModelConfig(**{**settings, **overrides})


def make_model(pattern: str, dtype: torch.dtype = torch.float64, seed: int = 0, **overrides) -> BioLM:
    """A tiny `BioLM` in eval mode whose gates and recurrent weights depend on the input.

    With the init's zero gate weights the recurrences would barely depend on the input, and a wrong
    direction or a leak could go unseen.
    """
    torch.manual_seed(seed)
    model = BioLM(tiny_config(pattern, **overrides)).to(dtype)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, SLSTMLayer):
                module.R.normal_(std=0.3)
                module.bias.normal_(std=1.0)
            elif isinstance(module, GatedLinearAttention):
                module.decay.weight.normal_(std=0.5)
            elif hasattr(module, "igate"):
                module.igate.weight.normal_(std=0.5)
                module.fgate.weight.normal_(std=0.5)
    return model.eval()


def cu_seqlens(lengths: list[int]) -> torch.Tensor:
    return torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()])
