"""The matmul-heavy core of the chunkwise mLSTM as an autograd Function with a hand-written backward.

:func:`biolm.kernels.mlstm.chunkwise.mlstm_chunkwise` keeps everything of size ``[B, H, S]`` (gate
cumsums, the stabilizer ``m`` with its maxima, the normalizer) in plain autograd, so the tie rules of
``max``/``cummax`` and the normalizer's branch are autograd's own. This Function takes the resulting
log-space quantities as *independent* inputs (and ``m`` for the normalizer ``inv(d, m)``); its backward
is the exact derivative of its forward, so the chain through the cheap part gives the exact gradient.

Per chunk ``c`` (``q`` unscaled, ``scale = Dk**-0.5``, ``t, s`` steps in the chunk)::

    a_s   = exp(u_s - top_c)                          k weights of the chunk's own state update
    g_c   = exp(m_prev_c - top_c)                     decay of the entering state
    C_c+1 = g_c C_c + sum_s a_s k_s v_s^T             (n likewise with k_s)
    D_ts  = scale * exp(u_s - m_rel_t), s <= t        intra-chunk weights, exponents <= 0
    e_t   = scale * exp(m_prev_c - m_rel_t)
    num_t = sum_s D_ts (q_t.k_s) v_s + e_t q_t^T C_c,  d_t = sum_s D_ts (q_t.k_s) + e_t q_t^T n_c
    h_t   = num_t * inv(d_t, m_t)

The backward runs one reverse loop over chunks for the state gradient and gets the gate gradients from
row dots: with ``r_t = dnum_t.num_t``, ``dm_rel_t = -(r_t + dd_t d_t)`` (the outputs scale as
``exp(-m_rel_t)``), ``dtop_c = -<C_c+1, dC_c+1> - <n_c+1, dn_c+1>`` (likewise ``exp(-top_c)``), and
``du_s = sum_t dW_ts W_ts + a_s k_s.dk_s``.

Both passes walk the sequence in segments of about ``SEGMENT_TOKENS`` steps, converting q, k, v to the
chunk-major layout that batched matmuls want one segment at a time and keeping per-segment buffers:
no allocation grows with S beyond the inputs and outputs themselves, so the time per token stays flat
(large fresh allocations cost page faults, which dominate at long S).
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable

from biolm.kernels.common import outside_autocast
from biolm.kernels.mlstm.reference import EPS

# Steps per segment of the forward and backward loops (see _segments).
SEGMENT_TOKENS = 512


def _intra_weights(u: torch.Tensor, m_rel: torch.Tensor, scale: float, out: torch.Tensor) -> torch.Tensor:
    """``scale * exp(u_s - m_rel_t)`` on ``s <= t``, else 0, into ``out`` [..., L, L]; u, m_rel [..., L]."""
    chunk = u.shape[-1]
    upper = torch.ones(chunk, chunk, dtype=torch.bool, device=u.device).triu(1)
    # Mask before exp: above the diagonal u_s - m_rel_t can be +1e4 and overflow.
    torch.sub(u[..., None, :], m_rel[..., :, None], out=out).masked_fill_(upper, -math.inf)
    return out.add_(math.log(scale)).exp_()


def _inv_normalizer(d: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``inv_normalizer(d, m)`` and its branch mask, the same expressions as the reference."""
    use_d = d.abs() > torch.exp(-m)
    inv = torch.where(use_d, 1.0 / (d.abs() + EPS), torch.sigmoid(m + math.log(EPS)) / EPS)
    return inv, use_d


def _bmm3(x: torch.Tensor) -> torch.Tensor:
    """[..., R, C] -> [N, R, C] view, for the in-place ``baddbmm_`` accumulations."""
    return x.view(-1, *x.shape[-2:])


def _segments(n_chunks: int, chunk: int) -> list[slice]:
    """Chunk ranges of about SEGMENT_TOKENS steps each."""
    step = max(1, SEGMENT_TOKENS // chunk)
    return [slice(c, min(c + step, n_chunks)) for c in range(0, n_chunks, step)]


def _tokens(sl: slice, chunk: int, seq: int) -> slice:
    return slice(sl.start * chunk, min(sl.stop * chunk, seq))


def _segment_view(x: torch.Tensor, sl: slice, chunk: int) -> torch.Tensor:
    """Steps of chunks ``sl`` of x [B, S, H, D] as [n, B, H, L, D]: a view, or a copy zero-padded past S."""
    part = x[:, _tokens(sl, chunk, x.shape[1])]
    n_s = sl.stop - sl.start
    pad = n_s * chunk - part.shape[1]
    if pad:
        part = torch.cat([part, part.new_zeros(part.shape[0], pad, *part.shape[2:])], dim=1)
    return part.reshape(part.shape[0], n_s, chunk, *part.shape[2:]).permute(1, 0, 3, 2, 4)


def _from_segment(out: torch.Tensor, sl: slice, x: torch.Tensor) -> None:
    """Writes chunk-major x [n, B, H, L, D] into the steps of chunks ``sl`` of out [B, S, H, D]."""
    n_s, batch, heads, chunk, dim = x.shape
    steps = _tokens(sl, chunk, out.shape[1])
    n_full = (steps.stop - steps.start) // chunk
    full = out[:, steps.start : steps.start + n_full * chunk]
    full.view(batch, n_full, chunk, heads, dim).permute(1, 0, 3, 2, 4).copy_(x[:n_full])
    if n_full < n_s:  # the padded last chunk of the sequence
        out[:, steps.start + n_full * chunk : steps.stop] = x[-1].permute(0, 2, 1, 3)[:, : steps.stop % chunk]


class ChunkCore(torch.autograd.Function):
    """``(q, k, v, u, m_rel, m, m_prev, top, C_0, n_0) -> (h, C_last, n_last)``; shapes below.

    q, k [B, S, H, Dk] and v [B, S, H, Dv] in the compute dtype; the gate quantities chunk-major with
    ``NC = ceil(S / L)``: u, m_rel, m = b + m_rel [NC, B, H, L]; m_prev, top [NC, B, H];
    C_0 [B, H, Dk, Dv]; n_0 [B, H, Dk]. Returns h [B, S, H, Dv] and the state after the last chunk.
    """

    @staticmethod
    def forward(ctx, q, k, v, u, m_rel, m, m_prev, top, c_0, n_0):
        scale = q.shape[-1] ** -0.5
        chunk = u.shape[-1]
        decay = torch.exp(m_prev - top)  # [NC, B, H]
        h = q.new_empty(*v.shape)
        c_cur, n_cur = c_0, n_0
        saved = []
        for sl in _segments(u.shape[0], chunk):
            # Always copies (clone): a view of the caller's q would be saved without a version check.
            q_s, k_s, v_s = (
                _segment_view(x, sl, chunk).clone(memory_format=torch.contiguous_format) for x in (q, k, v)
            )
            n_s = sl.stop - sl.start
            # States entering each chunk of the segment, and the one after it: the chunks' own
            # contributions first, then the recurrence in place.
            c_all = q.new_empty(n_s + 1, *c_0.shape)
            n_all = q.new_empty(n_s + 1, *n_0.shape)
            kw = k_s * torch.exp(u[sl] - top[sl, ..., None])[..., None]
            torch.matmul(kw.transpose(-1, -2), v_s, out=c_all[1:])
            torch.sum(kw, -2, out=n_all[1:])
            c_all[0], n_all[0] = c_cur, n_cur
            for j in range(n_s):
                c_all[j + 1].addcmul_(c_all[j], decay[sl.start + j, ..., None, None])
                n_all[j + 1].addcmul_(n_all[j], decay[sl.start + j, ..., None])
            c_cur, n_cur = c_all[-1], n_all[-1]
            c_prev, n_prev = c_all[:-1], n_all[:-1]

            qi = q_s * (scale * torch.exp(m_prev[sl, ..., None] - m_rel[sl]))[..., None]
            # The L x L blocks are no larger than v for L <= Dv: saved rather than recomputed.
            dmat = _intra_weights(u[sl], m_rel[sl], scale, out=q.new_empty(*u[sl].shape, chunk))
            w = (q_s @ k_s.transpose(-1, -2)).mul_(dmat)  # [n, B, H, L, L]
            num = w @ v_s
            _bmm3(num).baddbmm_(_bmm3(qi), _bmm3(c_prev))
            d = w.sum(-1).add_(
                torch.bmm(_bmm3(qi), n_prev.reshape(-1, n_prev.shape[-1], 1)).view(w.shape[:-1])
            )
            inv = _inv_normalizer(d, m[sl])[0]
            h_s = num.mul_(inv[..., None])  # backward needs only d_num . num = d_h . h
            _from_segment(h, sl, h_s)
            saved.append((q_s, k_s, v_s, c_prev, n_prev, h_s, d, inv, w, dmat))
        ctx.save_for_backward(u, m_rel, m, m_prev, top)
        # q, k, v themselves are not saved: their chunk-major copies are, per segment.
        ctx.shapes = (q.shape, k.shape, v.shape)
        ctx.segments = saved
        return h, c_cur.clone(), n_cur.clone()

    @staticmethod
    @once_differentiable  # in-place buffers: a double backward must fail loudly, not silently
    @outside_autocast
    def backward(ctx, d_h, d_c_last, d_n_last):
        u, m_rel, m, m_prev, top = ctx.saved_tensors

        scale = ctx.shapes[0][-1] ** -0.5
        chunk = u.shape[-1]
        decay = torch.exp(m_prev - top)
        dq, dk, dv = (u.new_empty(shape) for shape in ctx.shapes)
        du, d_m_rel, d_m = torch.empty_like(u), torch.empty_like(u), torch.empty_like(u)
        d_m_prev, d_top = torch.empty_like(m_prev), torch.empty_like(top)
        dc_cur, dn_cur = d_c_last, d_n_last
        # Segments last to first: the state gradient flows backwards in time.
        for sl, saved in reversed(list(zip(_segments(u.shape[0], chunk), ctx.segments, strict=True))):
            gates = [x[sl] for x in (u, m_rel, m, m_prev, top, decay)]
            grads = [x[sl] for x in (du, d_m_rel, d_m, d_m_prev, d_top)]
            dq_s, dk_s, dv_s, dc_cur, dn_cur = _backward_segment(
                scale, _segment_view(d_h, sl, chunk), *gates, *saved, dc_cur, dn_cur, *grads
            )
            for out, x in ((dq, dq_s), (dk, dk_s), (dv, dv_s)):
                _from_segment(out, sl, x)
        return dq, dk, dv, du, d_m_rel, d_m, d_m_prev, d_top, dc_cur, dn_cur


def _backward_segment(
    scale, d_h, u, m_rel, m, m_prev, top, decay, q, k, v, c_prev, n_prev, h, d, inv, w, dmat,
    d_c_next, d_n_next, du, d_m_rel, d_m, d_m_prev, d_top,
):  # fmt: skip
    """Gradients of one segment: returns dq, dk, dv (chunk-major) and (dC, dn) entering the segment;
    writes the gate gradients into du, d_m_rel, d_m, d_m_prev, d_top (views of the full ones)."""
    a = torch.exp(u - top[..., None])
    e = scale * torch.exp(m_prev[..., None] - m_rel)

    # Normalizer h = num * inv(d, m), with the derivatives autograd takes through inv_normalizer.
    d_num = torch.mul(d_h, inv[..., None], out=torch.empty_like(h))  # contiguous, whatever d_h's layout
    # r = d_num . num = d_h . h = inv * (dL/d inv): no division by a possibly underflowed inv.
    r = torch.linalg.vecdot(d_h, h)
    _, use_d = _inv_normalizer(d, m)
    d_d = torch.where(use_d, -r * inv * d.sign(), 0.0)
    d_m.copy_(torch.where(use_d, 0.0, r * (1 - torch.sigmoid(m + math.log(EPS)))))
    torch.neg(r.add_(d_d * d), out=d_m_rel)

    # Inter-chunk read-out q_t^T C_c: its gradients, and its contribution to dC_c.
    dq = (d_num @ c_prev.transpose(-1, -2)).addcmul_(d_d[..., None], n_prev[..., None, :]).mul_(e[..., None])
    torch.sum(torch.linalg.vecdot(dq, q), -1, out=d_m_prev)
    qi = q * e[..., None]

    # Reverse loop, in place: dc_all[j] = dC of the state entering chunk j of the segment.
    n_s = q.shape[0]
    dc_all = q.new_empty(n_s + 1, *c_prev.shape[1:])
    dn_all = q.new_empty(n_s + 1, *n_prev.shape[1:])
    torch.matmul(qi.transpose(-1, -2), d_num, out=dc_all[:-1])
    dn_all[:-1] = (qi.transpose(-1, -2) @ d_d[..., None])[..., 0]
    dc_all[-1], dn_all[-1] = d_c_next, d_n_next
    for j in range(n_s - 1, -1, -1):
        dc_all[j].addcmul_(dc_all[j + 1], decay[j, ..., None, None])
        dn_all[j].addcmul_(dn_all[j + 1], decay[j, ..., None])
    dc_next, dn_next = dc_all[1:], dn_all[1:]

    # The chunk's own state update sum_s a_s k_s v_s^T; C_c+1 scales as exp(-top) as a whole.
    dk = (v @ dc_next.transpose(-1, -2)).add_(dn_next[..., None, :]).mul_(a[..., None])
    dv = (k * a[..., None]) @ dc_next
    # dc_next is a scratch of this segment from here on: in place, no temporary of its size.
    d_gc = dc_next.mul_(c_prev).sum((-1, -2)) + torch.linalg.vecdot(n_prev, dn_next)
    torch.linalg.vecdot(dk, k, out=du)
    d_m_prev += decay * d_gc
    torch.neg(du.sum(-1).addcmul_(decay, d_gc), out=d_top)

    # Intra-chunk block W = (q k^T) * D; du_s = sum_t dW_ts W_ts.
    _bmm3(dv).baddbmm_(_bmm3(w).transpose(1, 2), _bmm3(d_num))
    ds = (d_num @ v.transpose(-1, -2)).add_(d_d[..., None])
    du += (ds * w).sum(-2)
    ds.mul_(dmat)
    _bmm3(dq).baddbmm_(_bmm3(ds), _bmm3(k))
    _bmm3(dk).baddbmm_(_bmm3(ds).transpose(1, 2), _bmm3(q))
    return dq, dk, dv, dc_all[0], dn_all[0]
