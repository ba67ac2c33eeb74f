"""The shifted-tap depthwise convolution (CPU path of CausalConv1d) equals F.conv1d, value and gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from biolm.models.common import CausalConv1d, _ShiftedTapConv


def conv1d_reference(padded: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    groups = weight.shape[0]
    return F.conv1d(padded.transpose(1, 2), weight[:, None, :], bias, groups=groups).transpose(1, 2)


def test_shifted_taps_equal_conv1d_with_gradients():
    torch.manual_seed(0)
    padded = torch.randn(3, 11 + 3, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(3, 11, 6, dtype=torch.float64)
    results = []
    for fn in (_ShiftedTapConv.apply, conv1d_reference):
        out = fn(padded, weight, bias)
        results.append((out, *torch.autograd.grad(out, (padded, weight, bias), dy)))
    for ours, reference in zip(*results, strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    small = (padded[:1, :6, :2].detach().requires_grad_(), weight[:2].detach().requires_grad_())
    assert torch.autograd.gradcheck(lambda p, w: _ShiftedTapConv.apply(p, w, bias[:2].detach()), small)


def test_module_uses_it_and_matches_conv1d():
    torch.manual_seed(0)
    conv = CausalConv1d(5, 4)
    x = torch.randn(2, 9, 5)
    y, state = conv(x)
    padded = torch.cat([torch.zeros(2, 3, 5), x], 1)
    torch.testing.assert_close(y, conv1d_reference(padded, conv.weight[:, 0], conv.bias))
    torch.testing.assert_close(state, x[:, -3:])
