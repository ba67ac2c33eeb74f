"""Chunkwise-parallel mLSTM in plain PyTorch: the CPU default.

The sequence is cut into chunks of ``L`` steps. Inside a chunk everything is batched matmuls over
many chunks at once; only the chunk-boundary state ``(C, n, m)`` is carried by a Python loop over
chunks (``S / L`` small steps on [B, H, Dk, Dv]). :func:`mlstm_chunkwise` keeps the cheap
``[B, H, S]`` gate and stabilizer math below in autograd and runs the matmul part through a Function
with a hand-written backward (:mod:`biolm.kernels.mlstm.chunkwise_backward`);
:func:`_mlstm_chunkwise_autograd`, all plain autograd, is the same function and is kept as its check.
With ``b`` the in-chunk inclusive cumsum of
``log_f``, ``u_s = i_s - b_s`` and ``m_prev`` the stabilizer entering the chunk, step ``t`` uses

    m_t = max(b_t + m_prev, max_{s<=t} (b_t - b_s + i_s)) = b_t + m_rel_t,
    m_rel_t = max(m_prev, cummax_{s<=t} u_s),

which is the recurrent ``m_t`` unrolled over the chunk (same value, same argmax, hence the same
autograd gradient as :func:`biolm.kernels.mlstm.reference.mlstm_recurrent`; see that module for
the full math). The intra-chunk weights ``exp(b_t - b_s + i_s - m_t) = exp(u_s - m_rel_t)`` have
exponents <= 0 by construction, and ``m_rel`` needs a cummax over ``L`` rather than a max over
``L x L``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from biolm.kernels.mlstm.chunkwise_backward import ChunkCore
from biolm.kernels.mlstm.reference import MLSTMState, compute_dtype, inv_normalizer, zero_state


def _to_chunks(x: torch.Tensor, n_chunks: int, chunk: int, dtype: torch.dtype) -> torch.Tensor:
    """[B, S, H, *] -> [B, H, NC, L, *], zero-padding the time axis to ``NC * L``."""
    x = x.to(dtype).transpose(1, 2)
    pad = n_chunks * chunk - x.shape[2]
    if pad:
        # F.pad counts dims from the last one; time is the third from the front.
        x = F.pad(x, (0, 0) * (x.dim() - 3) + (0, pad))
    return x.reshape(*x.shape[:2], n_chunks, chunk, *x.shape[3:])


def _mlstm_chunkwise_autograd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    state: MLSTMState | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, MLSTMState]:
    """The plain-autograd chunkwise mLSTM: slower, kept as the check of :func:`mlstm_chunkwise`.

    Args:
        q: Queries [B, S, H, Dk] (scaled by ``Dk**-0.5`` inside).
        k: Keys [B, S, H, Dk].
        v: Values [B, S, H, Dv].
        i: Input-gate pre-activations [B, S, H].
        f: Forget-gate pre-activations [B, S, H].
        state: Initial state (C [B,H,Dk,Dv], n [B,H,Dk], m [B,H]) or None for zeros.
        chunk_size: Chunk length ``L``; any S works (the tail is padded).

    Returns:
        ``h`` [B, S, H, Dv] in the dtype of ``q`` and the final state (float32, float64 for float64).
    """
    batch, seq, heads, dk = q.shape
    dv = v.shape[-1]
    dt = compute_dtype(q.dtype)
    if state is None:
        state = zero_state(batch, heads, dk, dv, dt, q.device)
    c_state, n_state, m_state = (s.to(dt) for s in state)
    if seq == 0:
        return q.new_zeros(batch, 0, heads, dv), MLSTMState(c_state, n_state, m_state)

    chunk = min(chunk_size, seq)
    n_chunks = -(-seq // chunk)
    qc = _to_chunks(q, n_chunks, chunk, dt) * dk**-0.5  # [B, H, NC, L, Dk]
    kc = _to_chunks(k, n_chunks, chunk, dt)  # [B, H, NC, L, Dk]
    # A ones column turns the normalizer n into an extra value column: one matmul serves both.
    v_ext = _to_chunks(F.pad(v.to(dt), (0, 1), value=1.0), n_chunks, chunk, dt)  # [B, H, NC, L, Dv+1]
    log_f = _to_chunks(F.logsigmoid(f.to(dt)), n_chunks, chunk, dt)  # padded with log_f = 0
    b = torch.cumsum(log_f, dim=-1)  # [B, H, NC, L]
    u = _to_chunks(i, n_chunks, chunk, dt) - b  # [B, H, NC, L]
    if n_chunks * chunk != seq:
        # u = -inf drops padded steps from every max and sum, so the final state is untouched.
        valid = torch.arange(n_chunks * chunk, device=q.device).view(n_chunks, chunk) < seq
        u = u.masked_fill(~valid, -math.inf)
    u_max = torch.cummax(u, dim=-1).values  # [B, H, NC, L]; finite: step 0 is always valid
    u_top = u_max[..., -1]  # [B, H, NC]

    # Each chunk's own contribution to the boundary state, stabilized by its max u_top.
    k_w = kc * torch.exp(u - u_top[..., None])[..., None]  # [B, H, NC, L, Dk]
    c_chunk = k_w.transpose(-1, -2) @ v_ext  # [B, H, NC, Dk, Dv+1]

    # Inter-chunk recurrence, first m (cheap, [B, H] per step), then C with one op per step.
    # unbind once: per-chunk indexing would make autograd scatter into full-size zeros per chunk.
    m_in = []
    for b_last, top in zip(b[..., -1].unbind(-1), u_top.unbind(-1), strict=True):
        m_in.append(m_state)
        m_state = b_last + torch.maximum(m_state, top)
    m_prev = torch.stack(m_in, dim=-1)  # [B, H, NC]
    top = torch.maximum(m_prev, u_top)  # m at the chunk end minus b_last
    c_gained = c_chunk * torch.exp(u_top - top)[..., None, None]
    c_in = []
    c_state = torch.cat([c_state, n_state[..., None]], dim=-1)  # [B, H, Dk, Dv+1]
    for decay, gained in zip(torch.exp(m_prev - top).unbind(-1), c_gained.unbind(2), strict=True):
        c_in.append(c_state)
        c_state = torch.addcmul(gained, decay[..., None, None], c_state)
    c_prev = torch.stack(c_in, dim=2)  # [B, H, NC, Dk, Dv+1]

    # m_t = b_t + m_rel_t; the intra-chunk weights exp(D_ts - m_t) = exp(u_s - m_rel_t) lose b_t.
    m_rel = torch.maximum(m_prev[..., None], u_max)  # [B, H, NC, L]
    causal = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    decay_in = torch.exp((u[..., None, :] - m_rel[..., :, None]).masked_fill(~causal, -math.inf))
    weights = (qc @ kc.transpose(-1, -2)) * decay_in  # [B, H, NC, L, L]
    q_inter = qc * torch.exp(m_prev[..., None] - m_rel)[..., None]  # [B, H, NC, L, Dk]
    out = weights @ v_ext + q_inter @ c_prev  # [B, H, NC, L, Dv+1]
    h = out[..., :dv] * inv_normalizer(out[..., dv], b + m_rel)[..., None]

    h = h.reshape(batch, heads, n_chunks * chunk, dv)[:, :, :seq].transpose(1, 2)
    # Contiguous outputs, so that callers can .view() them; one copy either way.
    h = h.to(dtype=q.dtype, memory_format=torch.contiguous_format)
    return h, MLSTMState(c_state[..., :dv].contiguous(), c_state[..., dv].contiguous(), m_state)


def _to_chunk_major(x: torch.Tensor, n_chunks: int, chunk: int, dtype: torch.dtype) -> torch.Tensor:
    """[B, S, H, *] -> [NC, B, H, L, *] contiguous, zero-padding the time axis to ``NC * L``."""
    x = x.to(dtype)
    pad = n_chunks * chunk - x.shape[1]
    if pad:
        x = F.pad(x, (0, 0) * (x.dim() - 2) + (0, pad))
    x = x.reshape(x.shape[0], n_chunks, chunk, *x.shape[2:])
    return x.movedim(2, 3).movedim(0, 1).contiguous()


def mlstm_chunkwise(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    state: MLSTMState | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, MLSTMState]:
    """Chunkwise mLSTM with a hand-written backward for the matmul part; gradients are exact.

    Same function and same gradients as :func:`_mlstm_chunkwise_autograd`: the stabilizer and the
    normalizer stay in autograd, the ``L x L`` blocks and the state recurrence go through
    :class:`~biolm.kernels.mlstm.chunkwise_backward.ChunkCore`.

    Args:
        q: Queries [B, S, H, Dk] (scaled by ``Dk**-0.5`` inside).
        k: Keys [B, S, H, Dk].
        v: Values [B, S, H, Dv].
        i: Input-gate pre-activations [B, S, H].
        f: Forget-gate pre-activations [B, S, H].
        state: Initial state (C [B,H,Dk,Dv], n [B,H,Dk], m [B,H]) or None for zeros.
        chunk_size: Chunk length ``L``; any S works (the tail is padded).

    Returns:
        ``h`` [B, S, H, Dv] in the dtype of ``q`` and the final state (float32, float64 for float64).
    """
    batch, seq, heads, dk = q.shape
    dv = v.shape[-1]
    dt = compute_dtype(q.dtype)
    if state is None:
        state = zero_state(batch, heads, dk, dv, dt, q.device)
    c_state, n_state, m_state = (s.to(dt) for s in state)
    if seq == 0:
        return q.new_zeros(batch, 0, heads, dv), MLSTMState(c_state, n_state, m_state)

    chunk = min(chunk_size, seq)
    n_chunks = -(-seq // chunk)
    log_f = _to_chunk_major(F.logsigmoid(f.to(dt)), n_chunks, chunk, dt)  # padded with log_f = 0
    b = torch.cumsum(log_f, dim=-1)  # [NC, B, H, L]
    u = _to_chunk_major(i, n_chunks, chunk, dt) - b  # [NC, B, H, L]
    if n_chunks * chunk != seq:
        # u = -inf drops padded steps from every max and sum, so the final state is untouched.
        valid = torch.arange(n_chunks * chunk, device=q.device).view(n_chunks, 1, 1, chunk) < seq
        u = u.masked_fill(~valid, -math.inf)
    u_max = torch.cummax(u, dim=-1).values  # [NC, B, H, L]; finite: step 0 is always valid
    u_top = u_max[..., -1]  # [NC, B, H]
    m_in = []
    for b_last, top in zip(b[..., -1].unbind(0), u_top.unbind(0), strict=True):
        m_in.append(m_state)
        m_state = b_last + torch.maximum(m_state, top)
    m_prev = torch.stack(m_in)  # [NC, B, H]
    top = torch.maximum(m_prev, u_top)  # m at the chunk end minus b_last
    m_rel = torch.maximum(m_prev[..., None], u_max)  # m_t - b_t, [NC, B, H, L]

    qc, kc, vc = (x.to(dt) for x in (q, k, v))
    h, c_last, n_last = ChunkCore.apply(qc, kc, vc, u, m_rel, b + m_rel, m_prev, top, c_state, n_state)
    h = h.to(q.dtype)
    return h, MLSTMState(c_last, n_last, m_state)
