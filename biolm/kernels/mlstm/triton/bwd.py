"""Chunkwise mLSTM backward in triton: gradients of q, k, v and of the initial (C, n).

The wrapper in :mod:`biolm.kernels.mlstm.triton.autograd` passes ``dh`` with the per-step factor
``r_t`` (so ``dnum_t = dh_t r_t``, the gradient of the stabilized numerator, is formed on the fly and
never stored) and ``dd_t`` (the gradient of ``d_t = q_t.n_t`` with the stabilized weights held fixed),
and derives the gate gradients from ``q.dq`` and ``k.dk``, which the kernels also return.

Kernel A' runs the dual recurrence backwards over chunks: the gradient state that later steps (and
the final state) send into chunk ``c``, stabilized by the forward ``m`` at the end of chunk ``c``, so
every exponent is <= 0. Kernels B' then compute all chunks in parallel: one dq, dk (and q.dq, k.dk),
one dv per value tile.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from biolm.kernels.mlstm.triton.common import (
    alloc,
    chunk_len,
    dot_precision,
    interpreting,
    padded,
    tile_configs,
)
from biolm.kernels.mlstm.triton.fwd import _chunk_gates

# Candidates checked offline for sm_90 (bf16, Dk=128, Dv=256, L=64): none spills registers.
_DUAL_TILES = tile_configs(
    [
        ({"BK": 64, "BV": 64}, 8),
        ({"BK": 32, "BV": 64}, 4),
        ({"BK": 64, "BV": 128}, 8),
        ({"BK": 32, "BV": 32}, 4),
    ]
)
_QK_TILES = tile_configs([({"BV": 32}, 8), ({"BV": 16}, 8), ({"BV": 32}, 16)])
# No 32-wide value tiles as a dot's N (see _OUTPUT_TILES in fwd.py).
_V_TILES = tile_configs([({"BV": 64}, 8), ({"BV": 128}, 8), ({"BV": 64}, 4)])


@triton.jit
def _dnum_tile(dh_ptr, r_ptr, row, seq_off, valid, rv, mv, DV: tl.constexpr):
    """``dnum = dh * r`` for an [L, BV] tile, float32 (zero on padding)."""
    dh = tl.load(dh_ptr + row * DV + rv[None, :], mask=valid[:, None] & mv[None, :], other=0.0)
    r = tl.load(r_ptr + seq_off, mask=valid, other=0.0)
    return dh.to(tl.float32) * r[:, None]


@triton.jit
def _chunk_weights(i_ptr, f_ptr, m_ptr, g_off, bh, c, t, valid, rl, H: tl.constexpr, NC):
    """The chunk's stabilizer pieces: in-chunk cumsum ``b``, ``u``, the entering ``m``, the running
    ``m_rel`` per step, ``top`` (the chunk-end stabilizer minus ``b_L``) and the causal weights
    ``w[t, s]`` and their transpose ``wT[s, t]`` (built directly, not by transposing: see
    ``_grad_v_kernel``)."""
    b, u = _chunk_gates(i_ptr, f_ptr, g_off, t, valid, H)
    m_prev = tl.load(m_ptr + bh * (NC + 1) + c)
    causal = rl[None, :] <= rl[:, None]
    m_rel = tl.maximum(m_prev, tl.max(tl.where(causal, u[None, :], float("-inf")), 1))
    top = tl.maximum(m_prev, tl.max(u, 0))
    w = tl.where(causal, tl.exp(u[None, :] - m_rel[:, None]), 0.0)  # [t, s]
    w_t = tl.where(rl[:, None] <= rl[None, :], tl.exp(u[:, None] - m_rel[None, :]), 0.0)  # [s, t]
    return u, m_prev, m_rel, top, w, w_t


@triton.autotune(configs=_DUAL_TILES, key=["DK", "DV", "L"])
@triton.jit
def _dual_kernel(
    q_ptr, i_ptr, f_ptr, m_ptr, dh_ptr, r_ptr, dd_ptr, dc_ptr, dn_ptr,
    S, NC, scale,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, L: tl.constexpr, PREC: tl.constexpr,
    BK: tl.constexpr, BV: tl.constexpr,
):  # fmt: skip
    """One program per (b*h, Dk tile, Dv tile), chunks in reverse; slot NC of ``dc``/``dn`` holds the
    final-state grads. Slot ``c + 1`` ends up holding what chunk ``c`` receives from later steps, slot 0
    the gradient of the initial state. Only the first Dv tile writes ``dn``."""
    bh = tl.program_id(0)
    pk = tl.program_id(1)
    pv = tl.program_id(2)
    b_idx = bh // H
    h_idx = bh % H
    rk = pk * BK + tl.arange(0, BK)
    rv = pv * BV + tl.arange(0, BV)
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
        q_in = qt.to(tl.float32) * tl.where(valid, scale * tl.exp(m_prev - m_rel), 0.0)[:, None]
        dnum = _dnum_tile(dh_ptr, r_ptr, row, bh * S + t, valid, rv, mv, DV)
        dd = tl.load(dd_ptr + bh * S + t, mask=valid, other=0.0)
        decay = tl.exp(m_prev - top)
        dC = dC * decay + tl.dot(tl.trans(q_in.to(qt.dtype)), dnum.to(qt.dtype), input_precision=PREC)
        dN = dN * decay + tl.sum(q_in * dd[:, None], 0)
        tl.store(dc_base + c * DK * DV + rk[:, None] * DV + rv[None, :], dC, mask=mkv)
        tl.store(dn_base + c * DK + rk, dN, mask=mk & ((rk * 0 + pv) == 0))


@triton.autotune(configs=_QK_TILES, key=["DK", "DV", "L", "BK"])
@triton.jit
def _grad_qk_kernel(
    q_ptr, k_ptr, v_ptr, i_ptr, f_ptr, c_ptr, n_ptr, m_ptr, dh_ptr, r_ptr, dd_ptr, dc_ptr, dn_ptr,
    dq_ptr, dk_ptr, qdq_ptr, kdk_ptr,
    S, NC, scale,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, L: tl.constexpr, PREC: tl.constexpr,
    BK: tl.constexpr, BV: tl.constexpr,
):  # fmt: skip
    """One program per (chunk, b*h, Dk tile): that tile of dq, dk for the chunk's steps, and its part
    of q.dq and k.dk (for the gates; slot ``pk`` of ``qdq``/``kdk``, summed by the caller).

    The score gradient ``g[t, s] = (dnum_t . v_s + dd_t) w_ts`` sums over all of Dv, so each program
    loops over value tiles; it does not involve q or k, so Dk can be split over the grid (a whole
    Dk of dq and dk accumulators does not fit the registers at Dk = 128).
    """
    c = tl.program_id(0)
    bh = tl.program_id(1)
    pk = tl.program_id(2)
    b_idx = bh // H
    h_idx = bh % H
    rk = pk * BK + tl.arange(0, BK)
    rl = tl.arange(0, L)
    mk = rk < DK
    t = c * L + rl
    valid = t < S
    g_off = b_idx * S * H + h_idx
    u, m_prev, m_rel, top, w, w_t = _chunk_weights(i_ptr, f_ptr, m_ptr, g_off, bh, c, t, valid, rl, H, NC)
    row = g_off + t[:, None] * H
    lk = valid[:, None] & mk[None, :]
    qt = tl.load(q_ptr + row * DK + rk[None, :], mask=lk, other=0.0)
    kt = tl.load(k_ptr + row * DK + rk[None, :], mask=lk, other=0.0)
    dd = tl.load(dd_ptr + bh * S + t, mask=valid, other=0.0)
    st = bh * (NC + 1)
    n = tl.load(n_ptr + (st + c) * DK + rk, mask=mk, other=0.0)
    dN = tl.load(dn_ptr + (st + c + 1) * DK + rk, mask=mk, other=0.0)

    g = tl.zeros((L, L), dtype=tl.float32)
    g_t = tl.zeros((L, L), dtype=tl.float32)  # g transposed, accumulated as such (see _grad_v_kernel)
    dq_state = tl.zeros((L, BK), dtype=tl.float32)  # dnum . C^T: through the entering state
    dk_state = tl.zeros((L, BK), dtype=tl.float32)  # v . dC^T: through the state sent onwards
    for v0 in range(0, DV, BV):
        rv = v0 + tl.arange(0, BV)
        mv = rv < DV
        mkv = mk[:, None] & mv[None, :]
        vt = tl.load(v_ptr + row * DV + rv[None, :], mask=valid[:, None] & mv[None, :], other=0.0)
        dnum = _dnum_tile(dh_ptr, r_ptr, row, bh * S + t, valid, rv, mv, DV).to(vt.dtype)
        C = tl.load(c_ptr + (st + c) * DK * DV + rk[:, None] * DV + rv[None, :], mask=mkv, other=0.0)
        dC = tl.load(dc_ptr + (st + c + 1) * DK * DV + rk[:, None] * DV + rv[None, :], mask=mkv, other=0.0)
        g += tl.dot(dnum, tl.trans(vt), input_precision=PREC)
        g_t += tl.dot(vt, tl.trans(dnum), input_precision=PREC)
        dq_state += tl.dot(dnum, tl.trans(C.to(vt.dtype)), input_precision=PREC)
        dk_state += tl.dot(vt, tl.trans(dC.to(vt.dtype)), input_precision=PREC)
    # g[t, s] = dL/d(score_ts) where score_ts = scale q_t.k_s.
    g = (g + dd[:, None]) * w
    g_t = (g_t + dd[None, :]) * w_t
    q_gain = tl.exp(m_prev - m_rel)
    dq = tl.dot(g.to(kt.dtype), kt, input_precision=PREC)
    dq = scale * (dq + q_gain[:, None] * (dq_state + dd[:, None] * n[None, :]))
    k_gain = tl.where(valid, tl.exp(u - top), 0.0)
    dk = scale * tl.dot(g_t.to(qt.dtype), qt, input_precision=PREC)
    dk += k_gain[:, None] * (dk_state + dN[None, :])
    tl.store(dq_ptr + row * DK + rk[None, :], dq.to(dq_ptr.dtype.element_ty), mask=lk)
    tl.store(dk_ptr + row * DK + rk[None, :], dk.to(dk_ptr.dtype.element_ty), mask=lk)
    part = (pk * tl.num_programs(1) + bh) * S + t
    tl.store(qdq_ptr + part, tl.sum(qt.to(tl.float32) * dq, 1), mask=valid)
    tl.store(kdk_ptr + part, tl.sum(kt.to(tl.float32) * dk, 1), mask=valid)


@triton.autotune(configs=_V_TILES, key=["DK", "DV", "L"])
@triton.jit
def _grad_v_kernel(
    q_ptr, k_ptr, i_ptr, f_ptr, m_ptr, dh_ptr, r_ptr, dc_ptr, dv_ptr,
    S, NC, scale,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, L: tl.constexpr, DKP: tl.constexpr,
    PREC: tl.constexpr, BV: tl.constexpr,
):  # fmt: skip
    """One program per (chunk, b*h, Dv tile): that tile of dv for the chunk's steps."""
    c = tl.program_id(0)
    bh = tl.program_id(1)
    pv = tl.program_id(2)
    b_idx = bh // H
    h_idx = bh % H
    rk = tl.arange(0, DKP)
    rv = pv * BV + tl.arange(0, BV)
    rl = tl.arange(0, L)
    mk = rk < DK
    mv = rv < DV
    t = c * L + rl
    valid = t < S
    g_off = b_idx * S * H + h_idx
    u, m_prev, m_rel, top, w, w_t = _chunk_weights(i_ptr, f_ptr, m_ptr, g_off, bh, c, t, valid, rl, H, NC)
    row = g_off + t[:, None] * H
    lk = valid[:, None] & mk[None, :]
    qt = tl.load(q_ptr + row * DK + rk[None, :], mask=lk, other=0.0)
    kt = tl.load(k_ptr + row * DK + rk[None, :], mask=lk, other=0.0)
    dnum = _dnum_tile(dh_ptr, r_ptr, row, bh * S + t, valid, rv, mv, DV).to(kt.dtype)
    st = bh * (NC + 1) + c + 1
    mkv = mk[:, None] & mv[None, :]
    dC = tl.load(dc_ptr + st * DK * DV + rk[:, None] * DV + rv[None, :], mask=mkv, other=0.0)
    # The transposed scores come from their own dot: triton 3.4 to 3.7.0 miscompiles a transposed dot
    # result fed into another dot on Hopper (triton-lang/triton#6124, fla-org/flash-linear-attention#640).
    aw_t = tl.dot(kt, tl.trans(qt), input_precision=PREC) * (scale * w_t)  # [s, t]
    dv = tl.dot(aw_t.to(kt.dtype), dnum, input_precision=PREC)
    k_gain = tl.where(valid, tl.exp(u - top), 0.0)
    dv += k_gain[:, None] * tl.dot(kt, dC.to(kt.dtype), input_precision=PREC)
    lv = valid[:, None] & mv[None, :]
    tl.store(dv_ptr + row * DV + rv[None, :], dv.to(dv_ptr.dtype.element_ty), mask=lv)


def mlstm_bwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    c_all: torch.Tensor,
    n_all: torch.Tensor,
    m_all: torch.Tensor,
    dh: torch.Tensor,
    r: torch.Tensor,
    dd: torch.Tensor,
    dc_final: torch.Tensor,
    dn_final: torch.Tensor,
    chunk_size: int,
) -> tuple[torch.Tensor, ...]:
    """Launch the backward kernels (contiguous inputs; saved forward states from :func:`mlstm_fwd`).

    Args:
        q, k, v, i, f: The forward inputs (see :func:`biolm.kernels.mlstm.mlstm`).
        c_all, n_all, m_all: Chunk-entry states from the forward, [B, H, NC+1, ...], float32.
        dh: Gradient of the output ``h`` [B, S, H, Dv] (any float dtype).
        r: The forward's ``1 / normalizer`` per step [B, H, S], float32 (``dnum = dh * r``).
        dd: Gradient of the stabilized ``d_t = q_t.n_t``, [B, H, S], float32.
        dc_final: Gradient of the final ``C`` [B, H, Dk, Dv], float32.
        dn_final: Gradient of the final ``n`` [B, H, Dk], float32.
        chunk_size: The chunk size given to the forward.

    Returns:
        dq, dk [B, S, H, Dk] and dv [B, S, H, Dv] in the dtype of ``q``; ``q.dq`` and ``k.dk`` per step
        [B, H, S] (float32, from the unrounded gradients); the stabilized-weight gradients of the
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
    dq = alloc(tuple(q.shape), q.dtype, dev)
    dk = alloc(tuple(k.shape), q.dtype, dev)
    dv = alloc(tuple(v.shape), q.dtype, dev)
    # Dk tiles of the dq/dk kernel: fixed here (not autotuned) because q.dq and k.dk come back as one
    # partial sum per tile.
    bk = min(padded(dk_), 16 if interpreting() else 64)
    nk = triton.cdiv(dk_, bk)
    qdq = alloc((nk, batch, heads, seq), torch.float32, dev)
    kdk = alloc((nk, batch, heads, seq), torch.float32, dev)
    if seq == 0:
        return dq, dk, dv, qdq.sum(0), kdk.sum(0), dc_all[:, :, 0], dn_all[:, :, 0]
    meta = dict(H=heads, DK=dk_, DV=dv_, L=L, PREC=dot_precision())
    scale = dk_**-0.5
    bh = batch * heads
    _dual_kernel[lambda cfg: (bh, triton.cdiv(dk_, cfg["BK"]), triton.cdiv(dv_, cfg["BV"]))](
        q, i, f, m_all, dh, r, dd, dc_all, dn_all, seq, nc, scale, **meta
    )
    _grad_qk_kernel[(nc, bh, nk)](
        q, k, v, i, f, c_all, n_all, m_all, dh, r, dd, dc_all, dn_all, dq, dk, qdq, kdk,
        seq, nc, scale, BK=bk, **meta,
    )  # fmt: skip
    _grad_v_kernel[lambda cfg: (nc, bh, triton.cdiv(dv_, cfg["BV"]))](
        q, k, i, f, m_all, dh, r, dc_all, dv, seq, nc, scale, DKP=padded(dk_), **meta
    )
    return dq, dk, dv, qdq.sum(0), kdk.sum(0), dc_all[:, :, 0], dn_all[:, :, 0]
