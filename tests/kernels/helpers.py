"""Helpers shared by the kernel tests: error measure and gradients of a random linear loss."""

from __future__ import annotations

import torch

F64 = torch.float64


def rel_rms(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||, computed in float64."""
    a, b = a.detach().to(F64), b.detach().to(F64)
    return ((a - b).norm() / b.norm()).item()


def run_with_grads(fn, inputs, state=None, seed=123):
    """h, final state and the grads of a random linear loss w.r.t. the inputs and the initial state.

    `fn(*inputs, state) -> (h, final_state)`; the state is any NamedTuple of tensors. The loss weighs
    h and every final-state tensor, so that every gradient path is exercised.
    """
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    if state is not None:
        state = type(state)(*(x.detach().clone().requires_grad_() for x in state))
    h, final = fn(*inputs, state)
    g = torch.Generator().manual_seed(seed)
    # Weights drawn on the CPU (the same on every device), then moved to the output's device.
    loss = (h.to(F64) * torch.randn(h.shape, generator=g, dtype=F64).to(h.device)).sum()
    for x in final:
        loss = loss + (x.to(F64) * torch.randn(x.shape, generator=g, dtype=F64).to(x.device)).sum()
    leaves = inputs + ([] if state is None else list(state))
    grads = torch.autograd.grad(loss, leaves)
    return h.detach(), tuple(x.detach() for x in final), tuple(x.detach() for x in grads)
