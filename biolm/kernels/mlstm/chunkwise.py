"""Chunkwise-parallel mLSTM in plain PyTorch: the CPU default.

The sequence is cut into chunks of ``L`` steps. Inside a chunk everything is batched matmuls over
many chunks at once; only the chunk-boundary state ``(C, n, m)`` is carried by a Python loop over
chunks (``S / L`` small steps on [B, H, Dk, Dv]). :func:`mlstm_chunkwise` keeps the cheap
``[B, H, S]`` gate and stabilizer math below in autograd and runs the matmul part through a Function
with a hand-written backward (:mod:`biolm.kernels.mlstm.chunkwise_backward`);
:func:`~biolm.kernels.mlstm.reference.mlstm_chunkwise_autograd`, all plain autograd, is the same
function and is kept beside the reference as its check.
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

from biolm.kernels.common import compute_dtype
from biolm.kernels.mlstm.chunkwise_backward import ChunkCore
from biolm.kernels.mlstm.reference import MLSTMState, zero_state


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

    Same function and same gradients as
    :func:`~biolm.kernels.mlstm.reference.mlstm_chunkwise_autograd`: the stabilizer and the
    normalizer stay in autograd, the ``L x L`` blocks and the state recurrence go through
    :class:`~biolm.kernels.mlstm.chunkwise_backward.ChunkCore`. ``backend="torch"``, and every
    backend's path for float64 inputs.

    Arguments as :func:`biolm.kernels.mlstm.mlstm`; returns ``(h, final state)``.
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
