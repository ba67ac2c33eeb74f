"""Chunkwise mLSTM forward in triton: boundary states (kernel A), then all chunk outputs (kernel B).

Notation as in :mod:`biolm.kernels.mlstm.chunkwise`: within a chunk ``b`` is the inclusive cumsum of
``log_f``, ``u_s = i_s - b_s``, ``m_prev`` the stabilizer entering the chunk, and step ``t`` has
``m_t = b_t + max(m_prev, max_{s<=t} u_s)`` — exactly the recurrent stabilizer.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from biolm.kernels.mlstm.triton.common import (
    EPS,
    LOG_EPS,
    alloc,
    chunk_len,
    dot_precision,
    inv_normalizer,
    logsigmoid,
    padded,
    tile_configs,
)


@triton.jit
def _chunk_gates(i_ptr, f_ptr, g_off, t, valid, H: tl.constexpr):
    """In-chunk cumsum ``b`` of log_f (padded steps add 0), ``u = i - b`` (-inf on padding)."""
    ig = tl.load(i_ptr + g_off + t * H, mask=valid, other=0.0).to(tl.float32)
    fg = tl.load(f_ptr + g_off + t * H, mask=valid, other=0.0).to(tl.float32)
    lf = tl.where(valid, logsigmoid(fg), 0.0)
    b = tl.cumsum(lf, 0)
    u = tl.where(valid, ig - b, float("-inf"))
    return b, u


# Both kernels tile the state's value dim (and the states kernel its key dim too) over the grid: a
# whole Dk x Dv float32 state (128 KB at 128 x 256) does not fit one program's registers.
# Candidates checked offline for sm_90 (bf16, Dk=128, Dv=256, L=64): none spills registers.
_STATE_TILES = tile_configs(
    [
        ({"BK": 64, "BV": 64}, 4),
        ({"BK": 64, "BV": 64}, 8),
        ({"BK": 32, "BV": 64}, 4),
        ({"BK": 64, "BV": 128}, 8),
    ]
)
# No 32-wide value tiles: on an H100 (triton 3.6, bf16, Dk=64, Dv=96) the 8-warp one hit an illegal
# memory access and, with 4 warps, results were wrong; the wider tiles were right at Dk=128, Dv=256.
_OUTPUT_TILES = tile_configs([({"BV": 64}, 8), ({"BV": 128}, 8), ({"BV": 64}, 4)])


@triton.autotune(configs=_STATE_TILES, key=["DK", "DV", "L"])
@triton.jit
def _states_kernel(
    k_ptr, v_ptr, i_ptr, f_ptr, c_ptr, n_ptr, m_ptr,
    S, NC,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, L: tl.constexpr, PREC: tl.constexpr,
    BK: tl.constexpr, BV: tl.constexpr,
):  # fmt: skip
    """One program per (b*h, Dk tile, Dv tile): walks the chunks and writes the state entering each
    (index NC: the final state). Only the first Dv tile writes ``n``, only the first tile ``m``."""
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
    # Which tile writes n: a vector mask (the interpreter rejects a scalar program-id test in a mask).
    writes_n = mk & ((rk * 0 + pv) == 0)
    c_base = c_ptr + bh * (NC + 1) * DK * DV
    n_base = n_ptr + bh * (NC + 1) * DK
    m_base = m_ptr + bh * (NC + 1)
    C = tl.load(c_base + rk[:, None] * DV + rv[None, :], mask=mkv, other=0.0)
    n = tl.load(n_base + rk, mask=mk, other=0.0)
    m = tl.load(m_base)
    g_off = b_idx * S * H + h_idx
    for c in range(NC):
        t = c * L + rl
        valid = t < S
        b, u = _chunk_gates(i_ptr, f_ptr, g_off, t, valid, H)
        top = tl.maximum(m, tl.max(u, 0))
        w = tl.exp(u - top)
        row = g_off + t[:, None] * H
        kt = tl.load(k_ptr + row * DK + rk[None, :], mask=valid[:, None] & mk[None, :], other=0.0)
        vt = tl.load(v_ptr + row * DV + rv[None, :], mask=valid[:, None] & mv[None, :], other=0.0)
        kw = kt.to(tl.float32) * w[:, None]
        decay = tl.exp(m - top)
        # Dot operands in the input dtype (bf16 runs on the bf16 units), accumulation in float32.
        C = C * decay + tl.dot(tl.trans(kw.to(vt.dtype)), vt, input_precision=PREC)
        n = n * decay + tl.sum(kw, 0)
        m = tl.sum(tl.where(rl == L - 1, b, 0.0), 0) + top
        tl.store(c_base + (c + 1) * DK * DV + rk[:, None] * DV + rv[None, :], C, mask=mkv)
        tl.store(n_base + (c + 1) * DK + rk, n, mask=writes_n)
        if (pk == 0) and (pv == 0):
            tl.store(m_base + c + 1, m)


@triton.autotune(configs=_OUTPUT_TILES, key=["DK", "DV", "L"])
@triton.jit
def _output_kernel(
    q_ptr, k_ptr, v_ptr, i_ptr, f_ptr, c_ptr, n_ptr, m_ptr, h_ptr, mt_ptr, d_ptr,
    S, NC, scale,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, L: tl.constexpr, DKP: tl.constexpr,
    PREC: tl.constexpr, EPS_: tl.constexpr, LOG_EPS_: tl.constexpr, BV: tl.constexpr,
):  # fmt: skip
    """One program per (chunk, b*h, Dv tile): that tile of h_t; the first tile also writes m_t and
    d_t = q_t.n_t (saved for the backward). The chunk's scores are recomputed by every Dv tile."""
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
    b, u = _chunk_gates(i_ptr, f_ptr, g_off, t, valid, H)

    row = g_off + t[:, None] * H
    qt = tl.load(q_ptr + row * DK + rk[None, :], mask=valid[:, None] & mk[None, :], other=0.0)
    kt = tl.load(k_ptr + row * DK + rk[None, :], mask=valid[:, None] & mk[None, :], other=0.0)
    vt = tl.load(v_ptr + row * DV + rv[None, :], mask=valid[:, None] & mv[None, :], other=0.0)
    st = c * DK * DV + bh * (NC + 1) * DK * DV
    C = tl.load(c_ptr + st + rk[:, None] * DV + rv[None, :], mask=mk[:, None] & mv[None, :], other=0.0)
    n = tl.load(n_ptr + bh * (NC + 1) * DK + c * DK + rk, mask=mk, other=0.0)
    m_prev = tl.load(m_ptr + bh * (NC + 1) + c)

    causal = rl[None, :] <= rl[:, None]
    # An L x L masked max is the running max of u; cheap next to the dots, and needs no scan.
    u_max = tl.max(tl.where(causal, u[None, :], float("-inf")), 1)
    m_rel = tl.maximum(m_prev, u_max)
    decay = tl.where(causal, tl.exp(u[None, :] - m_rel[:, None]), 0.0)
    # The query scale and the inter-chunk gain are applied to dot products, not to the operands, so
    # that bf16 operands are the inputs themselves (no extra rounding).
    w = tl.dot(qt, tl.trans(kt), input_precision=PREC) * (scale * decay)
    q_gain = scale * tl.exp(m_prev - m_rel)
    num = tl.dot(w.to(vt.dtype), vt, input_precision=PREC)
    num += tl.dot(qt, C.to(qt.dtype), input_precision=PREC) * q_gain[:, None]
    d = tl.sum(w, 1) + tl.sum(qt.to(tl.float32) * n[None, :], 1) * q_gain
    m_t = b + m_rel
    h = num * inv_normalizer(d, m_t, EPS_, LOG_EPS_)[:, None]
    tl.store(h_ptr + row * DV + rv[None, :], h.to(h_ptr.dtype.element_ty), mask=valid[:, None] & mv[None, :])
    seq_off = bh * S + t
    tl.store(mt_ptr + seq_off, m_t, mask=valid & ((t * 0 + pv) == 0))
    tl.store(d_ptr + seq_off, d, mask=valid & ((t * 0 + pv) == 0))


def mlstm_fwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    c0: torch.Tensor,
    n0: torch.Tensor,
    m0: torch.Tensor,
    chunk_size: int = 64,
    out: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the forward kernels on contiguous inputs.

    Args:
        q, k, v, i, f, chunk_size: As in :func:`biolm.kernels.mlstm.mlstm`; float32 or bfloat16,
            contiguous.
        c0, n0, m0: The initial state's C, n, m, float32 and contiguous.
        out: Optional preallocated ``h`` [B, S, H, Dv] in the dtype of ``q``.

    Returns:
        ``h`` [B, S, H, Dv]; the states entering each chunk plus the final one, ``C`` [B, H, NC+1, Dk, Dv],
        ``n`` [B, H, NC+1, Dk], ``m`` [B, H, NC+1] (float32); per-step ``m_t`` and ``d_t = q_t.n_t``
        [B, H, S] (float32).
    """
    batch, seq, heads, dk = q.shape
    dv = v.shape[-1]
    dev = q.device
    L = chunk_len(chunk_size, seq)
    nc = triton.cdiv(seq, L)
    c_all = alloc((batch, heads, nc + 1, dk, dv), torch.float32, dev)
    n_all = alloc((batch, heads, nc + 1, dk), torch.float32, dev)
    m_all = alloc((batch, heads, nc + 1), torch.float32, dev)
    c_all[:, :, 0] = c0
    n_all[:, :, 0] = n0
    m_all[:, :, 0] = m0
    h = alloc((batch, seq, heads, dv), q.dtype, dev) if out is None else out
    m_seq = alloc((batch, heads, seq), torch.float32, dev)
    d_seq = alloc((batch, heads, seq), torch.float32, dev)
    if seq == 0:
        return h, c_all, n_all, m_all, m_seq, d_seq
    meta = dict(H=heads, DK=dk, DV=dv, L=L, PREC=dot_precision())
    bh = batch * heads
    _states_kernel[lambda cfg: (bh, triton.cdiv(dk, cfg["BK"]), triton.cdiv(dv, cfg["BV"]))](
        k, v, i, f, c_all, n_all, m_all, seq, nc, **meta
    )
    _output_kernel[lambda cfg: (nc, bh, triton.cdiv(dv, cfg["BV"]))](
        q,
        k,
        v,
        i,
        f,
        c_all,
        n_all,
        m_all,
        h,
        m_seq,
        d_seq,
        seq,
        nc,
        dk**-0.5,
        EPS_=EPS,
        LOG_EPS_=LOG_EPS,
        DKP=padded(dk),
        **meta,
    )
    return h, c_all, n_all, m_all, m_seq, d_seq
