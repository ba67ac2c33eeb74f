"""Kernels under autocast (`trainer.precision=bf16-mixed`): they keep their own precision, so a call
inside a bfloat16 autocast region gives what the same call gives outside one, and whole models train."""

from __future__ import annotations

import pytest
import torch

from biolm.kernels import linear_attention, mlstm, slstm
from biolm.models import BioLM, ModelConfig


def _bf16(*shape):
    return torch.randn(*shape).to(torch.bfloat16).requires_grad_()


def _mlstm_inputs():
    torch.manual_seed(0)
    return (_bf16(2, 19, 2, 8), _bf16(2, 19, 2, 8), _bf16(2, 19, 2, 6), _bf16(2, 19, 2), _bf16(2, 19, 2))


OPS = {
    "mlstm": (lambda q, k, v, i, f: mlstm(q, k, v, i, f, chunk_size=8, backend="torch"), _mlstm_inputs),
    "slstm": (
        lambda g, r: slstm(g, r, backend="torch"),
        lambda: (
            torch.manual_seed(0),
            _bf16(2, 7, 2, 4, 4),
            (0.3 * torch.randn(2, 4, 4, 4)).requires_grad_(),
        )[1:],
    ),
    "linear_attention": (
        lambda q, k, v, d: linear_attention(q, k, v, log_decay=d, normalize=True, backend="torch"),
        lambda: (*_mlstm_inputs()[:3], (-torch.rand(2, 19, 2)).requires_grad_()),
    ),
}


@pytest.mark.parametrize("name", list(OPS))
def test_autocast_does_not_change_a_kernel(name):
    op, make = OPS[name]
    plain_inputs, cast_inputs = make(), make()
    plain = op(*plain_inputs)
    plain.float().square().sum().backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = op(*cast_inputs)
    cast.float().square().sum().backward()  # outside the region, as torch (and Lightning) do it
    assert cast.dtype == plain.dtype
    torch.testing.assert_close(cast, plain, rtol=0, atol=0)
    for a, b in zip(plain_inputs, cast_inputs, strict=True):
        # Gradients of bfloat16 inputs are rounded to bfloat16 from float32 sums whose order may vary
        # with the threads: equal to within one bfloat16 step (2**-8 relative) of the largest entry.
        scale = float(a.grad.float().abs().max())
        torch.testing.assert_close(b.grad.float(), a.grad.float(), rtol=2**-7, atol=2**-8 * scale)


@pytest.mark.parametrize("pattern", ["m", "s", "x", "a", "t"])
def test_models_train_under_bf16_autocast(pattern):
    torch.manual_seed(0)
    model = BioLM(
        ModelConfig(vocab_size=16, d_model=32, n_layers=2, num_heads=2, pattern=pattern, chunk_size=8)
    )
    ids = torch.randint(0, 16, (2, 21))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(ids[:, :-1]).logits
    loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
    loss.backward()
    assert torch.isfinite(loss)
    for param_name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), param_name
