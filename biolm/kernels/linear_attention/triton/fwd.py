"""Chunkwise linear-attention forward in triton: boundary states (kernel A), then all chunk outputs (B).

Notation as in :mod:`biolm.kernels.linear_attention.chunkwise`: inside a chunk ``b_t`` is the
inclusive cumsum of ``g`` and ``D_ts = sum_{s<r<=t} g_r``. Both are sums of the ``g`` they span (never
a difference of two cumsums), so ``g`` near ``-1e4`` cannot cancel catastrophically and every
exponent is ``<= 0`` when ``g <= 0``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from biolm.kernels.mlstm.triton.common import alloc, chunk_len, dot_precision, padded


@triton.jit
def chunk_decay(g_ptr, g_off, t, valid, rl, H: tl.constexpr, L: tl.constexpr, HAS_DECAY: tl.constexpr):
    """Per-chunk decay terms; padded steps have ``g = 0`` so they leave the state as it was.

    Returns:
        ``b`` [L] (inclusive cumsum), ``seg`` [L, L] = ``exp(D_ts)`` (0 above the diagonal),
        ``w_end`` [L] = ``exp(D_{L-1,s})`` (0 on padding) and the chunk decay ``exp(b_{L-1})``.
    """
    causal = rl[None, :] <= rl[:, None]
    if HAS_DECAY:
        g = tl.load(g_ptr + g_off + t * H, mask=valid, other=0.0).to(tl.float32)
        b = tl.cumsum(g, 0)
        # Row t holds g_t only where t > s, so the cumsum down the rows sums exactly (s, t].
        d = tl.cumsum(tl.where(rl[:, None] > rl[None, :], g[:, None], 0.0), 0)
        seg = tl.where(causal, tl.exp(tl.where(causal, d, 0.0)), 0.0)
        d_end = tl.sum(tl.where(rl[:, None] == L - 1, d, 0.0), 0)
        w_end = tl.where(valid, tl.exp(d_end), 0.0)
        total = tl.exp(tl.sum(g, 0))
    else:
        b = tl.zeros([L], dtype=tl.float32)
        seg = tl.where(causal, 1.0, 0.0)
        w_end = tl.where(valid, 1.0, 0.0)
        total = 1.0
    return b, seg, w_end, total


@triton.jit
def _states_kernel(
    k_ptr, v_ptr, g_ptr, s_ptr, z_ptr,
    S, NC,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, L: tl.constexpr,
    DKP: tl.constexpr, DVP: tl.constexpr, PREC: tl.constexpr, HAS_DECAY: tl.constexpr,
):  # fmt: skip
    """One program per (b, h): walks the chunks and writes the state entering each (slot NC: final)."""
    bh = tl.program_id(0)
    b_idx = bh // H
    h_idx = bh % H
    rk = tl.arange(0, DKP)
    rv = tl.arange(0, DVP)
    rl = tl.arange(0, L)
    mk = rk < DK
    mv = rv < DV
    mkv = mk[:, None] & mv[None, :]
    s_base = s_ptr + bh * (NC + 1) * DK * DV
    z_base = z_ptr + bh * (NC + 1) * DK
    st = tl.load(s_base + rk[:, None] * DV + rv[None, :], mask=mkv, other=0.0)
    z = tl.load(z_base + rk, mask=mk, other=0.0)
    g_off = b_idx * S * H + h_idx
    for c in range(NC):
        t = c * L + rl
        valid = t < S
        _, _, w_end, total = chunk_decay(g_ptr, g_off, t, valid, rl, H, L, HAS_DECAY)
        row = g_off + t[:, None] * H
        kt = tl.load(k_ptr + row * DK + rk[None, :], mask=valid[:, None] & mk[None, :], other=0.0)
        vt = tl.load(v_ptr + row * DV + rv[None, :], mask=valid[:, None] & mv[None, :], other=0.0)
        kw = kt.to(tl.float32) * w_end[:, None]
        st = st * total + tl.dot(tl.trans(kw), vt.to(tl.float32), input_precision=PREC)
        z = z * total + tl.sum(kw, 0)
        tl.store(s_base + (c + 1) * DK * DV + rk[:, None] * DV + rv[None, :], st, mask=mkv)
        tl.store(z_base + (c + 1) * DK + rk, z, mask=mk)


@triton.jit
def _output_kernel(
    q_ptr, k_ptr, v_ptr, g_ptr, s_ptr, z_ptr, h_ptr, d_ptr,
    S, NC, scale,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr, L: tl.constexpr,
    DKP: tl.constexpr, DVP: tl.constexpr, PREC: tl.constexpr, HAS_DECAY: tl.constexpr,
    NORMALIZE: tl.constexpr,
):  # fmt: skip
    """One program per (chunk, b*h): ``h_t`` and ``d_t = (scale q_t).z_t`` (saved for the backward)."""
    c = tl.program_id(0)
    bh = tl.program_id(1)
    b_idx = bh // H
    h_idx = bh % H
    rk = tl.arange(0, DKP)
    rv = tl.arange(0, DVP)
    rl = tl.arange(0, L)
    mk = rk < DK
    mv = rv < DV
    t = c * L + rl
    valid = t < S
    g_off = b_idx * S * H + h_idx
    b, seg, _, _ = chunk_decay(g_ptr, g_off, t, valid, rl, H, L, HAS_DECAY)
    row = g_off + t[:, None] * H
    lk = valid[:, None] & mk[None, :]
    lv = valid[:, None] & mv[None, :]
    qt = tl.load(q_ptr + row * DK + rk[None, :], mask=lk, other=0.0).to(tl.float32) * scale
    kt = tl.load(k_ptr + row * DK + rk[None, :], mask=lk, other=0.0).to(tl.float32)
    vt = tl.load(v_ptr + row * DV + rv[None, :], mask=lv, other=0.0).to(tl.float32)
    st_off = bh * (NC + 1) + c
    st = tl.load(
        s_ptr + st_off * DK * DV + rk[:, None] * DV + rv[None, :], mask=mk[:, None] & mv[None, :], other=0.0
    )
    z = tl.load(z_ptr + st_off * DK + rk, mask=mk, other=0.0)

    w = tl.dot(qt, tl.trans(kt), input_precision=PREC) * seg
    q_in = qt * tl.exp(b)[:, None]
    num = tl.dot(w, vt, input_precision=PREC) + tl.dot(q_in, st, input_precision=PREC)
    d = tl.sum(w, 1) + tl.sum(q_in * z[None, :], 1)
    if NORMALIZE:
        num = num / tl.maximum(tl.abs(d), 1.0)[:, None]
    tl.store(h_ptr + row * DV + rv[None, :], num.to(h_ptr.dtype.element_ty), mask=lv)
    tl.store(d_ptr + bh * S + t, d, mask=valid)


def meta(heads: int, dk: int, dv: int, chunk: int, has_decay: bool) -> dict:
    """Compile-time arguments shared by the forward and backward kernels."""
    return dict(
        H=heads, DK=dk, DV=dv, L=chunk, DKP=padded(dk), DVP=padded(dv),
        PREC=dot_precision(), HAS_DECAY=has_decay,
    )  # fmt: skip


def linear_attention_fwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    s0: torch.Tensor,
    z0: torch.Tensor,
    normalize: bool,
    scale: float,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launch the forward kernels on contiguous inputs (S >= 1).

    Args:
        q, k, v, log_decay, normalize, chunk_size: As in
            :func:`biolm.kernels.linear_attention.linear_attention`; q, k, v float32 or bfloat16, all
            contiguous.
        s0, z0: The initial state's S and z, float32 and contiguous.
        scale: The query scale itself (no None).

    Returns:
        ``h`` [B, S, H, Dv] in the dtype of ``q``; the states entering each chunk plus the final one,
        ``S`` [B, H, NC+1, Dk, Dv] and ``z`` [B, H, NC+1, Dk]; ``d_t`` [B, H, S] (all float32).
    """
    batch, seq, heads, dk = q.shape
    dv = v.shape[-1]
    dev = q.device
    chunk = chunk_len(chunk_size, seq)
    nc = triton.cdiv(seq, chunk)
    s_all = alloc((batch, heads, nc + 1, dk, dv), torch.float32, dev)
    z_all = alloc((batch, heads, nc + 1, dk), torch.float32, dev)
    s_all[:, :, 0] = s0
    z_all[:, :, 0] = z0
    h = alloc((batch, seq, heads, dv), q.dtype, dev)
    d_seq = alloc((batch, heads, seq), torch.float32, dev)
    kw = meta(heads, dk, dv, chunk, log_decay is not None)
    g = q if log_decay is None else log_decay  # an unread placeholder pointer without decay
    _states_kernel[(batch * heads,)](k, v, g, s_all, z_all, seq, nc, **kw)
    _output_kernel[(nc, batch * heads)](
        q, k, v, g, s_all, z_all, h, d_seq, seq, nc, scale, NORMALIZE=normalize, **kw
    )
    return h, s_all, z_all, d_seq
