"""Fused single-token mLSTM step in triton (generation): one program per (batch, head)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from biolm.kernels.mlstm.reference import MLSTMState, zero_state
from biolm.kernels.mlstm.triton.common import EPS, LOG_EPS, alloc, inv_normalizer, logsigmoid, padded


@triton.jit
def _step_kernel(
    q_ptr, k_ptr, v_ptr, i_ptr, f_ptr, c_ptr, n_ptr, m_ptr, h_ptr, c_out, n_out, m_out,
    scale,
    DK: tl.constexpr, DV: tl.constexpr, DKP: tl.constexpr, DVP: tl.constexpr,
    EPS_: tl.constexpr, LOG_EPS_: tl.constexpr,
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
    ig = tl.load(i_ptr + bh).to(tl.float32)
    lf = logsigmoid(tl.load(f_ptr + bh).to(tl.float32))
    C = tl.load(c_ptr + bh * DK * DV + rk[:, None] * DV + rv[None, :], mask=mkv, other=0.0)
    n = tl.load(n_ptr + bh * DK + rk, mask=mk, other=0.0)
    m_prev = tl.load(m_ptr + bh)

    m = tl.maximum(lf + m_prev, ig)
    decay = tl.exp(lf + m_prev - m)
    gain = tl.exp(ig - m)
    C = decay * C + gain * (k[:, None] * v[None, :])
    n = decay * n + gain * k
    # Dk and Dv are head dims (small), so plain reductions beat a padded tl.dot here.
    num = tl.sum(q[:, None] * C, 0)
    d = tl.sum(q * n, 0)
    h = num * inv_normalizer(d, m, EPS_, LOG_EPS_)
    tl.store(h_ptr + bh * DV + rv, h.to(h_ptr.dtype.element_ty), mask=mv)
    tl.store(c_out + bh * DK * DV + rk[:, None] * DV + rv[None, :], C, mask=mkv)
    tl.store(n_out + bh * DK + rk, n, mask=mk)
    tl.store(m_out + bh, m)


def mlstm_step_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    state: MLSTMState | None = None,
) -> tuple[torch.Tensor, MLSTMState]:
    """One fused mLSTM step; same function and arguments as :func:`biolm.kernels.mlstm.mlstm_step`.

    float32 or bfloat16 inputs; the new state is float32. Forward only (generation): no autograd graph
    is recorded through the kernel.
    """
    batch, heads, dk = q.shape
    dv = v.shape[-1]
    dev = q.device
    if state is None:
        state = zero_state(batch, heads, dk, dv, torch.float32, dev)
    c0, n0, m0 = (s.detach().to(torch.float32).contiguous() for s in state)
    h = alloc((batch, heads, dv), q.dtype, dev)
    c1 = alloc((batch, heads, dk, dv), torch.float32, dev)
    n1 = alloc((batch, heads, dk), torch.float32, dev)
    m1 = alloc((batch, heads), torch.float32, dev)
    q, k, v, i, f = (x.detach().contiguous() for x in (q, k, v, i, f))
    _step_kernel[(batch * heads,)](
        q, k, v, i, f, c0, n0, m0, h, c1, n1, m1, dk**-0.5,
        DK=dk, DV=dv, DKP=padded(dk), DVP=padded(dv), EPS_=EPS, LOG_EPS_=LOG_EPS,
    )  # fmt: skip
    return h, MLSTMState(c1, n1, m1)
