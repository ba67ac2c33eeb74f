"""Chunkwise mLSTM backward in triton: gradients of q, k, v and of the initial (C, n).

The wrapper in :mod:`biolm.kernels.mlstm.triton.autograd` turns ``dh`` into ``dnum_t = dh_t r_t`` and
``dd_t`` (the gradients of the stabilized numerator and of ``d_t = q_t.n_t`` with the stabilized
weights held fixed) and derives the gate gradients from the outputs of these kernels. Kernel A' runs
the dual recurrence backwards over chunks: the gradient state that later steps (and the final state)
send into chunk ``c``, stabilized by the forward ``m`` at the end of chunk ``c``, so every exponent is
<= 0. Kernel B' then computes dq, dk, dv of all chunks in parallel.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from biolm.kernels.mlstm.triton.common import alloc, chunk_len, dot_precision, padded
from biolm.kernels.mlstm.triton.fwd import _chunk_gates


@triton.jit
def _dual_kernel(
    q_ptr, i_ptr, f_ptr, m_ptr, dnum_ptr, dd_ptr, dc_ptr, dn_ptr,
    S, NC, scale,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr,
    L: tl.constexpr, DKP: tl.constexpr, DVP: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """One program per (b, h), chunks in reverse; slot NC of ``dc``/``dn`` holds the final-state grads.

    Slot ``c + 1`` ends up holding what chunk ``c`` receives from later steps, slot 0 the gradient of
    the initial state.
    """
    bh = tl.program_id(0)
    b_idx = bh // H
    h_idx = bh % H
    rk = tl.arange(0, DKP)
    rv = tl.arange(0, DVP)
    rl = tl.arange(0, L)
    mk = rk < DK
    mv = rv < DV
    mkv = mk[:, None] & mv[None, :]
    dc_base = dc_ptr + bh * (NC + 1) * DK * DV
    dn_base = dn_ptr + bh * (NC + 1) * DK
    dC = tl.load(dc_base + NC * DK * DV + rk[:, None] * DV + rv[None, :], mask=mkv, other=0.0)
    dN = tl.load(dn_base + NC * DK + rk, mask=mk, other=0.0)
    g_off = b_idx * S * H + h_idx
    causal = rl[None, :] <= rl[:, None]
    for cc in range(NC):
        c = NC - 1 - cc
        t = c * L + rl
        valid = t < S
        b, u = _chunk_gates(i_ptr, f_ptr, g_off, t, valid, H)
        m_prev = tl.load(m_ptr + bh * (NC + 1) + c)
        top = tl.maximum(m_prev, tl.max(u, 0))
        m_rel = tl.maximum(m_prev, tl.max(tl.where(causal, u[None, :], float("-inf")), 1))
        row = g_off + t[:, None] * H
        qt = tl.load(q_ptr + row * DK + rk[None, :], mask=valid[:, None] & mk[None, :], other=0.0)
        q_in = qt.to(tl.float32) * (scale * tl.exp(m_prev - m_rel))[:, None]
        q_in = tl.where(valid[:, None], q_in, 0.0)
        dnum = tl.load(dnum_ptr + row * DV + rv[None, :], mask=valid[:, None] & mv[None, :], other=0.0)
        dd = tl.load(dd_ptr + bh * S + t, mask=valid, other=0.0)
        decay = tl.exp(m_prev - top)
        dC = dC * decay + tl.dot(tl.trans(q_in), dnum, input_precision=PREC)
        dN = dN * decay + tl.sum(q_in * dd[:, None], 0)
        tl.store(dc_base + c * DK * DV + rk[:, None] * DV + rv[None, :], dC, mask=mkv)
        tl.store(dn_base + c * DK + rk, dN, mask=mk)


@triton.jit
def _grad_kernel(
    q_ptr, k_ptr, v_ptr, i_ptr, f_ptr, c_ptr, n_ptr, m_ptr, dnum_ptr, dd_ptr, dc_ptr, dn_ptr,
    dq_ptr, dk_ptr, dv_ptr,
    S, NC, scale,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr,
    L: tl.constexpr, DKP: tl.constexpr, DVP: tl.constexpr, PREC: tl.constexpr,
):  # fmt: skip
    """One program per (chunk, b*h): dq, dk, dv (float32) of the chunk's steps."""
    c = tl.program_id(0)
    bh = tl.program_id(1)
    b_idx = bh // H
    h_idx = bh % H
    rk = tl.arange(0, DKP)
    rv = tl.arange(0, DVP)
    rl = tl.arange(0, L)
    mk = rk < DK
    mv = rv < DV
    mkv = mk[:, None] & mv[None, :]
    t = c * L + rl
    valid = t < S
    g_off = b_idx * S * H + h_idx
    b, u = _chunk_gates(i_ptr, f_ptr, g_off, t, valid, H)
    row = g_off + t[:, None] * H
    lk = valid[:, None] & mk[None, :]
    lv = valid[:, None] & mv[None, :]
    qt = tl.load(q_ptr + row * DK + rk[None, :], mask=lk, other=0.0).to(tl.float32) * scale
    kt = tl.load(k_ptr + row * DK + rk[None, :], mask=lk, other=0.0).to(tl.float32)
    vt = tl.load(v_ptr + row * DV + rv[None, :], mask=lv, other=0.0).to(tl.float32)
    dnum = tl.load(dnum_ptr + row * DV + rv[None, :], mask=lv, other=0.0)
    dd = tl.load(dd_ptr + bh * S + t, mask=valid, other=0.0)
    st = bh * (NC + 1)
    C = tl.load(c_ptr + (st + c) * DK * DV + rk[:, None] * DV + rv[None, :], mask=mkv, other=0.0)
    n = tl.load(n_ptr + (st + c) * DK + rk, mask=mk, other=0.0)
    dC = tl.load(dc_ptr + (st + c + 1) * DK * DV + rk[:, None] * DV + rv[None, :], mask=mkv, other=0.0)
    dN = tl.load(dn_ptr + (st + c + 1) * DK + rk, mask=mk, other=0.0)
    m_prev = tl.load(m_ptr + st + c)

    causal = rl[None, :] <= rl[:, None]
    m_rel = tl.maximum(m_prev, tl.max(tl.where(causal, u[None, :], float("-inf")), 1))
    top = tl.maximum(m_prev, tl.max(u, 0))
    w = tl.where(causal, tl.exp(u[None, :] - m_rel[:, None]), 0.0)  # [t, s]
    a = tl.dot(qt, tl.trans(kt), input_precision=PREC)  # q_t . k_s
    # P[t, s] = dL/d(log weight): (dnum_t . v_s + dd_t) * (q_t . k_s) * w_ts.
    g = (tl.dot(dnum, tl.trans(vt), input_precision=PREC) + dd[:, None]) * w
    p_q = g  # multiplies k_s for dq_t, q_t for dk_s
    q_gain = tl.exp(m_prev - m_rel)
    dq = tl.dot(p_q, kt, input_precision=PREC)
    dq += q_gain[:, None] * (tl.dot(dnum, tl.trans(C), input_precision=PREC) + dd[:, None] * n[None, :])
    k_gain = tl.where(valid, tl.exp(u - top), 0.0)
    dk = tl.dot(tl.trans(p_q), qt, input_precision=PREC)
    dk += k_gain[:, None] * (tl.dot(vt, tl.trans(dC), input_precision=PREC) + dN[None, :])
    dv = tl.dot(tl.trans(a * w), dnum, input_precision=PREC)
    dv += k_gain[:, None] * tl.dot(kt, dC, input_precision=PREC)
    tl.store(dq_ptr + row * DK + rk[None, :], dq * scale, mask=lk)
    tl.store(dk_ptr + row * DK + rk[None, :], dk, mask=lk)
    tl.store(dv_ptr + row * DV + rv[None, :], dv, mask=lv)


def mlstm_bwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    c_all: torch.Tensor,
    n_all: torch.Tensor,
    m_all: torch.Tensor,
    dnum: torch.Tensor,
    dd: torch.Tensor,
    dc_final: torch.Tensor,
    dn_final: torch.Tensor,
    chunk_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the backward kernels (contiguous inputs; saved forward states from :func:`mlstm_fwd`).

    Args:
        q, k, v, i, f: The forward inputs ([B, S, H, D] and [B, S, H]).
        c_all, n_all, m_all: Chunk-entry states from the forward, [B, H, NC+1, ...], float32.
        dnum: Gradient of the stabilized numerator, [B, S, H, Dv], float32.
        dd: Gradient of the stabilized ``d_t = q_t.n_t``, [B, H, S], float32.
        dc_final: Gradient of the final ``C`` [B, H, Dk, Dv], float32.
        dn_final: Gradient of the final ``n`` [B, H, Dk], float32.
        chunk_size: The chunk size given to the forward.

    Returns:
        dq, dk [B, S, H, Dk], dv [B, S, H, Dv] (float32) and the stabilized-weight gradients of the
        initial ``C`` [B, H, Dk, Dv] and ``n`` [B, H, Dk].
    """
    batch, seq, heads, dk_ = q.shape
    dv_ = v.shape[-1]
    dev = q.device
    L = chunk_len(chunk_size, seq)
    nc = triton.cdiv(seq, L)
    dc_all = alloc((batch, heads, nc + 1, dk_, dv_), torch.float32, dev)
    dn_all = alloc((batch, heads, nc + 1, dk_), torch.float32, dev)
    dc_all[:, :, nc] = dc_final
    dn_all[:, :, nc] = dn_final
    dq = alloc(tuple(q.shape), torch.float32, dev)
    dk = alloc(tuple(k.shape), torch.float32, dev)
    dv = alloc(tuple(v.shape), torch.float32, dev)
    if seq == 0:
        return dq, dk, dv, dc_all[:, :, 0], dn_all[:, :, 0]
    meta = dict(H=heads, DK=dk_, DV=dv_, L=L, DKP=padded(dk_), DVP=padded(dv_), PREC=dot_precision())
    scale = dk_**-0.5
    _dual_kernel[(batch * heads,)](q, i, f, m_all, dnum, dd, dc_all, dn_all, seq, nc, scale, **meta)
    _grad_kernel[(nc, batch * heads)](
        q, k, v, i, f, c_all, n_all, m_all, dnum, dd, dc_all, dn_all, dq, dk, dv, seq, nc, scale, **meta
    )
    return dq, dk, dv, dc_all[:, :, 0], dn_all[:, :, 0]
