"""The row-blocked SwiGLU Function equals the plain autograd ops, value and every gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from biolm.models.common import RMSNorm, rms_norm, swiglu, swiglu_plain


def inputs(n_rows: int, d: int = 12, hidden: int = 20, dtype=torch.float64):
    torch.manual_seed(0)
    x = torch.randn(n_rows, d, dtype=dtype, requires_grad=True)
    w_up = (0.3 * torch.randn(2 * hidden, d, dtype=dtype)).requires_grad_()
    w_down = (0.3 * torch.randn(d, hidden, dtype=dtype)).requires_grad_()
    return x, w_up, w_down


@pytest.mark.parametrize("rows", [1, 7, 64, 1000])  # blocks smaller than, not dividing, larger than N
def test_blocked_equals_plain(rows):
    x, w_up, w_down = inputs(37)
    dy = torch.randn(37, 12, dtype=torch.float64)
    grads = []
    for fn in (lambda: swiglu(x, w_up, w_down, rows=rows), lambda: swiglu_plain(x, w_up, w_down)):
        out = fn()
        grads.append((out, *torch.autograd.grad(out, (x, w_up, w_down), dy)))
    for ours, plain in zip(*grads, strict=True):
        torch.testing.assert_close(ours, plain, rtol=1e-12, atol=1e-12)


def test_gradcheck():
    x, w_up, w_down = inputs(9, d=4, hidden=3)
    assert torch.autograd.gradcheck(lambda *a: swiglu(*a, rows=4), (x, w_up, w_down))


def test_batched_noncontiguous_input_and_float32():
    x, w_up, w_down = inputs(2 * 3 * 12, dtype=torch.float32)
    x3 = x.detach().view(2, 3, 12, 12).transpose(1, 2)[..., 0, :].requires_grad_()  # [2, 12, 12], strided
    assert not x3.is_contiguous()
    torch.testing.assert_close(swiglu(x3, w_up, w_down, rows=5), swiglu_plain(x3, w_up, w_down))


def test_autocast_uses_plain_ops():
    x, w_up, w_down = inputs(8, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = swiglu(x, w_up, w_down)
    assert out.dtype == torch.bfloat16  # the Function would have returned float32


@pytest.mark.parametrize("rows", [1, 5, 1000])
def test_rms_norm_equals_torch(rows):
    torch.manual_seed(0)
    x = torch.randn(3, 7, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(16, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(3, 7, 16, dtype=torch.float64)
    results = []
    for fn in (lambda: rms_norm(x, weight, 1e-5, rows=rows), lambda: F.rms_norm(x, (16,), weight, 1e-5)):
        out = fn()
        results.append((out, *torch.autograd.grad(out, (x, weight), dy)))
    for ours, plain in zip(*results, strict=True):
        torch.testing.assert_close(ours, plain, rtol=1e-12, atol=1e-12)


def test_rms_norm_gradcheck_and_module():
    torch.manual_seed(0)
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, w: rms_norm(a, w, 1e-3, rows=4), (x, weight))
    module = RMSNorm(5, eps=1e-3).double()
    assert [name for name, _ in module.named_parameters()] == ["weight"]  # as torch.nn.RMSNorm
    torch.testing.assert_close(module(x), F.rms_norm(x, (5,), module.weight, 1e-3))
