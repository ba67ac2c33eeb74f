"""Chunkwise linear-attention backward in triton: gradients of q, k, v, log_decay and the initial (S, z).

The wrapper in :mod:`biolm.kernels.linear_attention.triton.autograd` turns ``dh`` into ``dnum_t``
(gradient of the unnormalized output ``o_t``) and ``dd_t`` (gradient of ``d_t = (scale q_t).z_t``).
``z`` is ``S`` with a column of ones in place of ``v``, so ``dd`` plays the part of that column of
``dnum`` throughout. Kernel A' runs the dual recurrence backwards over chunks (the gradient of the
state leaving each chunk); kernel B' then computes dq, dk, dv and the log-decay gradient of all chunks
in parallel.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from biolm.kernels.linear_attention.triton.fwd import chunk_decay, meta
from biolm.kernels.mlstm.triton.common import alloc, chunk_len


@triton.jit
def _dual_kernel(
    q_ptr, g_ptr, dnum_ptr, dd_ptr, ds_ptr, dz_ptr,
    S, NC, scale,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, L: tl.constexpr,
    DKP: tl.constexpr, DVP: tl.constexpr, PREC: tl.constexpr, HAS_DECAY: tl.constexpr,
):  # fmt: skip
    """One program per (b, h), chunks in reverse; slot NC of ``ds``/``dz`` holds the final-state grads.

    Slot ``c + 1`` ends up holding the gradient of the state leaving chunk ``c``, slot 0 that of the
    initial state.
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
    ds_base = ds_ptr + bh * (NC + 1) * DK * DV
    dz_base = dz_ptr + bh * (NC + 1) * DK
    dS = tl.load(ds_base + NC * DK * DV + rk[:, None] * DV + rv[None, :], mask=mkv, other=0.0)
    dZ = tl.load(dz_base + NC * DK + rk, mask=mk, other=0.0)
    g_off = b_idx * S * H + h_idx
    for cc in range(NC):
        c = NC - 1 - cc
        t = c * L + rl
        valid = t < S
        b, _, _, total = chunk_decay(g_ptr, g_off, t, valid, rl, H, L, HAS_DECAY)
        row = g_off + t[:, None] * H
        qt = tl.load(q_ptr + row * DK + rk[None, :], mask=valid[:, None] & mk[None, :], other=0.0)
        q_in = tl.where(valid[:, None], qt.to(tl.float32) * (scale * tl.exp(b))[:, None], 0.0)
        dnum = tl.load(dnum_ptr + row * DV + rv[None, :], mask=valid[:, None] & mv[None, :], other=0.0)
        dd = tl.load(dd_ptr + bh * S + t, mask=valid, other=0.0)
        dS = dS * total + tl.dot(tl.trans(q_in), dnum, input_precision=PREC)
        dZ = dZ * total + tl.sum(q_in * dd[:, None], 0)
        tl.store(ds_base + c * DK * DV + rk[:, None] * DV + rv[None, :], dS, mask=mkv)
        tl.store(dz_base + c * DK + rk, dZ, mask=mk)


@triton.jit
def _grad_kernel(
    q_ptr, k_ptr, v_ptr, g_ptr, s_ptr, z_ptr, dnum_ptr, dd_ptr, ds_ptr, dz_ptr,
    dq_ptr, dk_ptr, dv_ptr, dg_ptr,
    S, NC, scale,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, L: tl.constexpr,
    DKP: tl.constexpr, DVP: tl.constexpr, PREC: tl.constexpr, HAS_DECAY: tl.constexpr,
):  # fmt: skip
    """One program per (chunk, b*h): dq, dk, dv and (with decay) dg, float32, of the chunk's steps."""
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
    b, seg, w_end, total = chunk_decay(g_ptr, g_off, t, valid, rl, H, L, HAS_DECAY)
    row = g_off + t[:, None] * H
    lk = valid[:, None] & mk[None, :]
    lv = valid[:, None] & mv[None, :]
    qt = tl.load(q_ptr + row * DK + rk[None, :], mask=lk, other=0.0).to(tl.float32) * scale
    kt = tl.load(k_ptr + row * DK + rk[None, :], mask=lk, other=0.0).to(tl.float32)
    vt = tl.load(v_ptr + row * DV + rv[None, :], mask=lv, other=0.0).to(tl.float32)
    dnum = tl.load(dnum_ptr + row * DV + rv[None, :], mask=lv, other=0.0)
    dd = tl.load(dd_ptr + bh * S + t, mask=valid, other=0.0)
    st = bh * (NC + 1)
    s_in = tl.load(s_ptr + (st + c) * DK * DV + rk[:, None] * DV + rv[None, :], mask=mkv, other=0.0)
    z_in = tl.load(z_ptr + (st + c) * DK + rk, mask=mk, other=0.0)
    dS = tl.load(ds_ptr + (st + c + 1) * DK * DV + rk[:, None] * DV + rv[None, :], mask=mkv, other=0.0)
    dZ = tl.load(dz_ptr + (st + c + 1) * DK + rk, mask=mk, other=0.0)

    # p[t, s] = dL/d(q_t.k_s) inside the chunk: (dnum_t.v_s + dd_t) exp(D_ts).
    d_a = tl.dot(dnum, tl.trans(vt), input_precision=PREC) + dd[:, None]
    p = d_a * seg
    dq = tl.dot(p, kt, input_precision=PREC)
    q_gain = tl.exp(b)
    dq_in = tl.dot(dnum, tl.trans(s_in), input_precision=PREC) + dd[:, None] * z_in[None, :]
    dq += q_gain[:, None] * dq_in
    dk = tl.dot(tl.trans(p), qt, input_precision=PREC)
    dk_out = tl.dot(vt, tl.trans(dS), input_precision=PREC) + dZ[None, :]
    dk += w_end[:, None] * dk_out
    w = tl.dot(qt, tl.trans(kt), input_precision=PREC) * seg
    dv = tl.dot(tl.trans(w), dnum, input_precision=PREC)
    dv += w_end[:, None] * tl.dot(kt, dS, input_precision=PREC)
    if HAS_DECAY:
        # dg_r sums the gradient of every exponent whose span contains r, each term a product of
        # already-decayed factors: no exp(F_t) exp(-F_s) split that would cancel near g = -1e4.
        before = rl[:, None] < rl[None, :]  # [s, r]: s < r
        from_to = rl[:, None] >= rl[None, :]  # [t, r]: t >= r
        m_intra = tl.dot(w * d_a, tl.where(before, 1.0, 0.0), input_precision=PREC)  # [t, r]
        dg = tl.sum(tl.where(from_to, m_intra, 0.0), 0)
        e_in = q_gain * tl.sum(qt * dq_in, 1)  # d/db_t of the read-out of the entering state
        dg += tl.sum(tl.where(from_to, e_in[:, None], 0.0), 0)
        u_out = w_end * tl.sum(kt * dk_out, 1)  # d/dD_{L-1,s} of the leaving state
        dg += tl.sum(tl.where(before, u_out[:, None], 0.0), 0)
        dg += total * (tl.sum(tl.sum(dS * s_in, 1), 0) + tl.sum(dZ * z_in, 0))
        tl.store(dg_ptr + g_off + t * H, dg, mask=valid)
    tl.store(dq_ptr + row * DK + rk[None, :], dq * scale, mask=lk)
    tl.store(dk_ptr + row * DK + rk[None, :], dk, mask=lk)
    tl.store(dv_ptr + row * DV + rv[None, :], dv, mask=lv)


def linear_attention_bwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    s_all: torch.Tensor,
    z_all: torch.Tensor,
    dnum: torch.Tensor,
    dd: torch.Tensor,
    ds_final: torch.Tensor,
    dz_final: torch.Tensor,
    scale: float,
    chunk_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Launch the backward kernels (contiguous inputs; saved states from :func:`linear_attention_fwd`).

    Args:
        q, k, v, log_decay: The forward inputs (see :func:`biolm.kernels.linear_attention.linear_attention`).
        s_all, z_all: Chunk-entry states from the forward, [B, H, NC+1, ...], float32.
        dnum: Gradient of the unnormalized output, [B, S, H, Dv], float32.
        dd: Gradient of ``d_t``, [B, H, S], float32.
        ds_final: Gradient of the final ``S`` [B, H, Dk, Dv], float32.
        dz_final: Gradient of the final ``z`` [B, H, Dk], float32.
        scale: Query scale of the forward.
        chunk_size: The chunk size given to the forward.

    Returns:
        dq, dk [B, S, H, Dk], dv [B, S, H, Dv], d log_decay [B, S, H] (None without decay), all
        float32, and the gradients of the initial ``S`` [B, H, Dk, Dv] and ``z`` [B, H, Dk].
    """
    batch, seq, heads, dk_ = q.shape
    dv_ = v.shape[-1]
    dev = q.device
    chunk = chunk_len(chunk_size, seq)
    nc = triton.cdiv(seq, chunk)
    ds_all = alloc((batch, heads, nc + 1, dk_, dv_), torch.float32, dev)
    dz_all = alloc((batch, heads, nc + 1, dk_), torch.float32, dev)
    ds_all[:, :, nc] = ds_final
    dz_all[:, :, nc] = dz_final
    dq = alloc(tuple(q.shape), torch.float32, dev)
    dk = alloc(tuple(k.shape), torch.float32, dev)
    dv = alloc(tuple(v.shape), torch.float32, dev)
    dg = None if log_decay is None else alloc(tuple(log_decay.shape), torch.float32, dev)
    kw = meta(heads, dk_, dv_, chunk, log_decay is not None)
    g = q if log_decay is None else log_decay  # an unread placeholder pointer without decay
    _dual_kernel[(batch * heads,)](q, g, dnum, dd, ds_all, dz_all, seq, nc, scale, **kw)
    _grad_kernel[(nc, batch * heads)](
        q,
        k,
        v,
        g,
        s_all,
        z_all,
        dnum,
        dd,
        ds_all,
        dz_all,
        dq,
        dk,
        dv,
        g if dg is None else dg,
        seq,
        nc,
        scale,
        **kw,
    )
    return dq, dk, dv, dg, ds_all[:, :, 0], dz_all[:, :, 0]
