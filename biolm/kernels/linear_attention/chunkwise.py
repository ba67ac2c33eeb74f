"""Chunkwise-parallel linear attention in plain PyTorch: the CPU default.

The sequence is cut into chunks of ``L`` steps. Inside a chunk everything is batched matmuls over
all chunks at once; only the chunk-boundary state ``[S | z]`` is carried across chunks. With ``g`` the
log decay and, inside a chunk, ``b_t = sum_{r<=t} g_r`` and ``D_ts = sum_{s<r<=t} g_r`` (``s <= t``),
step ``t`` of a chunk entered with state ``S_in`` reads

    o_t = (scale q_t)^T (exp(b_t) S_in + sum_{s<=t} exp(D_ts) k_s v_s^T),

and the chunk leaves ``exp(b_{L-1}) S_in + sum_s exp(D_{L-1,s}) k_s v_s^T``; ``z`` is the same with
a column of ones in place of ``v``. See :mod:`biolm.kernels.linear_attention.reference` for the
full math and the normalizer.

``D_ts`` is summed directly over its own terms (a masked cumsum over an ``L x L`` matrix) rather than
as ``b_t - b_s``: with ``g`` near ``-1e4`` the difference of two large cumsums would cancel
catastrophically, and ``exp(b_t) * exp(-b_s)`` would overflow. Every exponent evaluated is a sum of
the ``g`` it spans, so it is ``<= 0`` whenever ``g <= 0``, and entries above the diagonal are
``-inf`` before the ``exp``, never after.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from biolm.kernels.common import compute_dtype, to_chunks
from biolm.kernels.linear_attention.reference import (
    LinearAttentionState,
    apply_normalizer,
    default_scale,
    zero_state,
)


def segment_sums(g: torch.Tensor) -> torch.Tensor:
    """``D[..., t, s] = sum_{s<r<=t} g_r`` for ``s <= t`` and ``-inf`` above the diagonal.

    Args:
        g: Log decays [..., L].

    Returns:
        Tensor [..., L, L] (rows ``t``, columns ``s``); the diagonal is 0.
    """
    chunk = g.shape[-1]
    strict = torch.ones(chunk, chunk, dtype=torch.bool, device=g.device).tril(-1)
    # Row t, column s holds g_t only where t > s, so the cumsum down rows sums exactly (s, t].
    terms = g[..., :, None].expand(*g.shape, chunk).masked_fill(~strict, 0.0)
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=g.device).tril()
    return torch.cumsum(terms, dim=-2).masked_fill(~causal, -math.inf)


def linear_attention_chunkwise(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    log_decay: torch.Tensor | None = None,
    state: LinearAttentionState | None = None,
    normalize: bool = False,
    scale: float | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """Chunkwise linear attention forward; gradients come from autograd and are exact.

    ``backend="torch"``, and the float64 and empty-sequence path of ``"triton"``. Arguments as
    :func:`biolm.kernels.linear_attention.linear_attention`; returns ``(h, final state)``.
    """
    batch, seq, heads, dk = q.shape
    dv = v.shape[-1]
    dt = compute_dtype(q.dtype)
    if state is None:
        state = zero_state(batch, heads, dk, dv, dt, q.device)
    s_state, z_state = (x.to(dt) for x in state)
    if seq == 0:
        return q.new_zeros(batch, 0, heads, dv), LinearAttentionState(s_state, z_state)

    chunk = min(chunk_size, seq)
    n_chunks = -(-seq // chunk)
    qc = to_chunks(q, n_chunks, chunk, dt) * default_scale(dk, scale)  # [B, H, NC, L, Dk]
    kc = to_chunks(k, n_chunks, chunk, dt)  # [B, H, NC, L, Dk]
    # A ones column turns z into an extra value column: one matmul serves S and z. Padded steps get
    # k = 0 and g = 0, so they leave the state exactly as it was.
    v_ext = to_chunks(F.pad(v.to(dt), (0, 1), value=1.0), n_chunks, chunk, dt)  # [B, H, NC, L, Dv+1]
    state_ext = torch.cat([s_state, z_state[..., None]], dim=-1)  # [B, H, Dk, Dv+1]
    scores = qc @ kc.transpose(-1, -2)  # [B, H, NC, L, L]

    if log_decay is None:
        causal = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~causal, 0.0)
        c_chunk = kc.transpose(-1, -2) @ v_ext  # [B, H, NC, Dk, Dv+1]
        # Without decay the boundary states are a prefix sum: no loop needed.
        c_sum = torch.cumsum(c_chunk, dim=2)
        c_prev = torch.cat([state_ext[:, :, None], state_ext[:, :, None] + c_sum[:, :, :-1]], dim=2)
        state_ext = state_ext + c_sum[:, :, -1]
        q_inter = qc
    else:
        g = to_chunks(log_decay, n_chunks, chunk, dt)  # [B, H, NC, L]
        seg = segment_sums(g)  # [B, H, NC, L, L]
        scores = scores * torch.exp(seg)
        k_w = kc * torch.exp(seg[..., -1, :])[..., None]  # decayed to the chunk end
        c_chunk = k_w.transpose(-1, -2) @ v_ext  # [B, H, NC, Dk, Dv+1]
        b = torch.cumsum(g, dim=-1)  # [B, H, NC, L]
        # unbind once: per-chunk indexing would make autograd scatter into full-size zeros per chunk.
        c_in = []
        for decay, gained in zip(torch.exp(b[..., -1]).unbind(-1), c_chunk.unbind(2), strict=True):
            c_in.append(state_ext)
            state_ext = torch.addcmul(gained, decay[..., None, None], state_ext)
        c_prev = torch.stack(c_in, dim=2)  # [B, H, NC, Dk, Dv+1]
        q_inter = qc * torch.exp(b)[..., None]

    out = scores @ v_ext + q_inter @ c_prev  # [B, H, NC, L, Dv+1]
    h = out[..., :dv]
    if normalize:
        h = apply_normalizer(h, out[..., dv])

    h = h.reshape(batch, heads, n_chunks * chunk, dv)[:, :, :seq].transpose(1, 2)
    # Contiguous outputs, so that callers can .view() them; one copy either way.
    h = h.to(dtype=q.dtype, memory_format=torch.contiguous_format)
    return h, LinearAttentionState(state_ext[..., :dv].contiguous(), state_ext[..., dv].contiguous())
