"""Fused single-token linear-attention step in triton (generation): one program per (batch, head)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from biolm.kernels.linear_attention.reference import (
    LinearAttentionState,
    default_scale,
    linear_attention_step,
    zero_state,
)
from biolm.kernels.mlstm.triton.common import alloc, padded


@triton.jit
def _step_kernel(
    q_ptr, k_ptr, v_ptr, g_ptr, s_ptr, z_ptr, h_ptr, s_out, z_out,
    scale,
    DK: tl.constexpr, DV: tl.constexpr, DKP: tl.constexpr, DVP: tl.constexpr,
    HAS_DECAY: tl.constexpr, NORMALIZE: tl.constexpr,
):  # fmt: skip
    bh = tl.program_id(0)
    rk = tl.arange(0, DKP)
    rv = tl.arange(0, DVP)
    mk = rk < DK
    mv = rv < DV
    mkv = mk[:, None] & mv[None, :]
    q = tl.load(q_ptr + bh * DK + rk, mask=mk, other=0.0).to(tl.float32) * scale
    k = tl.load(k_ptr + bh * DK + rk, mask=mk, other=0.0).to(tl.float32)
    v = tl.load(v_ptr + bh * DV + rv, mask=mv, other=0.0).to(tl.float32)
    st = tl.load(s_ptr + bh * DK * DV + rk[:, None] * DV + rv[None, :], mask=mkv, other=0.0)
    z = tl.load(z_ptr + bh * DK + rk, mask=mk, other=0.0)
    if HAS_DECAY:
        decay = tl.exp(tl.load(g_ptr + bh).to(tl.float32))
        st = decay * st
        z = decay * z
    st = st + k[:, None] * v[None, :]
    z = z + k
    # Dk and Dv are head dims (small), so plain reductions beat a padded tl.dot here.
    h = tl.sum(q[:, None] * st, 0)
    if NORMALIZE:
        h = h / tl.maximum(tl.abs(tl.sum(q * z, 0)), 1.0)
    tl.store(h_ptr + bh * DV + rv, h.to(h_ptr.dtype.element_ty), mask=mv)
    tl.store(s_out + bh * DK * DV + rk[:, None] * DV + rv[None, :], st, mask=mkv)
    tl.store(z_out + bh * DK + rk, z, mask=mk)


def linear_attention_step_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    log_decay: torch.Tensor | None = None,
    state: LinearAttentionState | None = None,
    normalize: bool = False,
    scale: float | None = None,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """One fused step; same function and arguments as
    :func:`biolm.kernels.linear_attention.linear_attention_step`.

    float32 or bfloat16 inputs (float64 goes to the torch step); the new state is float32. Forward
    only (generation): no autograd graph is recorded through the kernel.
    """
    if q.dtype == torch.float64:
        return linear_attention_step(
            q, k, v, log_decay=log_decay, state=state, normalize=normalize, scale=scale
        )
    batch, heads, dk = q.shape
    dv = v.shape[-1]
    dev = q.device
    if state is None:
        state = zero_state(batch, heads, dk, dv, torch.float32, dev)
    s0, z0 = (x.detach().to(torch.float32).contiguous() for x in state)
    h = alloc((batch, heads, dv), q.dtype, dev)
    s1 = alloc((batch, heads, dk, dv), torch.float32, dev)
    z1 = alloc((batch, heads, dk), torch.float32, dev)
    q, k, v = (x.detach().contiguous() for x in (q, k, v))
    g = q if log_decay is None else log_decay.detach().contiguous()  # unread placeholder without decay
    _step_kernel[(batch * heads,)](
        q, k, v, g, s0, z0, h, s1, z1, default_scale(dk, scale),
        DK=dk, DV=dv, DKP=padded(dk), DVP=padded(dv), HAS_DECAY=log_decay is not None,
        NORMALIZE=bool(normalize),
    )  # fmt: skip
    return h, LinearAttentionState(s1, z1)
