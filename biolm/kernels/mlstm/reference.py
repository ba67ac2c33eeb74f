"""Ground-truth mLSTM forms: the single step, the recurrent loop, the quadratic parallel form and the
plain-autograd chunkwise form (the check of the fast :mod:`biolm.kernels.mlstm.chunkwise`).

All forms in this package compute one function. With ``q`` scaled by ``Dk**-0.5`` and
``log_f = logsigmoid(f)``::

    m_t = max(log_f_t + m_{t-1}, i_t)
    C_t = exp(log_f_t + m_{t-1} - m_t) C_{t-1} + exp(i_t - m_t) k_t v_t^T
    n_t = exp(log_f_t + m_{t-1} - m_t) n_{t-1} + exp(i_t - m_t) k_t
    h_t = (q_t^T C_t) / (max(|q_t^T n_t|, exp(-m_t)) + eps),   eps = 1e-6

``m`` is the running log-space stabilizer: every exponent above is <= 0, so nothing overflows, and
``(C, n)`` are the unstabilized memory and normalizer scaled by ``exp(-m)``. Without an initial state
``C_0 = 0, n_0 = 0, m_0 = 0``. Because ``m`` also enters ``h`` (through ``eps`` and the
``exp(-m)`` floor), every form must produce the same ``m_t`` for gradients to agree.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from biolm.kernels.common import compute_dtype, to_chunks

EPS = 1e-6


class MLSTMState(NamedTuple):
    """Recurrent mLSTM state, float32 (float64 when the inputs are float64).

    Attributes:
        C: Stabilized matrix memory, [B, H, Dk, Dv].
        n: Stabilized normalizer, [B, H, Dk].
        m: Log-space stabilizer, [B, H].
    """

    C: torch.Tensor
    n: torch.Tensor
    m: torch.Tensor


def zero_state(
    batch: int, heads: int, dk: int, dv: int, dtype: torch.dtype, device: torch.device
) -> MLSTMState:
    """The empty state ``C_0 = 0, n_0 = 0, m_0 = 0`` with shapes [B,H,Dk,Dv], [B,H,Dk], [B,H]."""
    return MLSTMState(
        torch.zeros(batch, heads, dk, dv, dtype=dtype, device=device),
        torch.zeros(batch, heads, dk, dtype=dtype, device=device),
        torch.zeros(batch, heads, dtype=dtype, device=device),
    )


def inv_normalizer(d: torch.Tensor, m: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``1 / (max(|d|, exp(-m)) + eps)``, elementwise, evaluated without overflow.

    ``exp(-m)`` overflows once ``m < -88`` (float32), which strongly closed forget gates reach
    quickly, and its backward then gives ``inf * 0 = NaN``. When the floor wins we use the exact
    identity ``1 / (exp(-m) + eps) = sigmoid(m + log(eps)) / eps``, finite with finite derivatives
    for every ``m``; the value and the gradient are those of the max form.

    Args:
        d: ``q_t^T n_t``, any shape.
        m: Stabilizer, same shape as ``d``.
        eps: Additive epsilon of the denominator.

    Returns:
        Tensor of the shape of ``d``.
    """
    abs_d = d.abs()
    with torch.no_grad():
        # An overflowing exp(-m) = inf only makes the comparison pick the floor, which is right.
        use_d = abs_d > torch.exp(-m)
    return torch.where(use_d, 1.0 / (abs_d + eps), torch.sigmoid(m + math.log(eps)) / eps)


def mlstm_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    state: MLSTMState | None = None,
) -> tuple[torch.Tensor, MLSTMState]:
    """One recurrent mLSTM step, the public :func:`biolm.kernels.mlstm.mlstm_step` (torch, any device).

    The tensors of :func:`biolm.kernels.mlstm.mlstm` for one token, without the ``S`` axis; returns
    ``h`` [B, H, Dv] and the new state. The math and the stabilizer are in the module docstring.
    """
    batch, heads, dk = q.shape
    dv = v.shape[-1]
    dt = compute_dtype(q.dtype)
    if state is None:
        state = zero_state(batch, heads, dk, dv, dt, q.device)
    c_prev, n_prev, m_prev = (s.to(dt) for s in state)
    qs = q.to(dt) * dk**-0.5
    k, v, i = k.to(dt), v.to(dt), i.to(dt)
    log_f = F.logsigmoid(f.to(dt))

    m = torch.maximum(log_f + m_prev, i)
    decay = torch.exp(log_f + m_prev - m)
    gain = torch.exp(i - m)
    c = decay[..., None, None] * c_prev + gain[..., None, None] * (k[..., :, None] * v[..., None, :])
    n = decay[..., None] * n_prev + gain[..., None] * k
    num = torch.einsum("bhk,bhkv->bhv", qs, c)
    d = (qs * n).sum(-1)
    h = num * inv_normalizer(d, m)[..., None]
    return h.to(q.dtype), MLSTMState(c, n, m)


def mlstm_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    state: MLSTMState | None = None,
) -> tuple[torch.Tensor, MLSTMState]:
    """The recurrent form: a plain loop of :func:`mlstm_step` over time. Slow; the ground truth
    (``backend="reference"``), exact in float64.

    Arguments as :func:`biolm.kernels.mlstm.mlstm` (no chunking); returns ``(h, final state)``.
    """
    batch, seq, heads, dk = q.shape
    dv = v.shape[-1]
    if state is None:
        state = zero_state(batch, heads, dk, dv, compute_dtype(q.dtype), q.device)
    hs = []
    for t in range(seq):
        h, state = mlstm_step(q[:, t], k[:, t], v[:, t], i[:, t], f[:, t], state)
        hs.append(h)
    if not hs:
        return q.new_zeros(batch, 0, heads, dv), MLSTMState(*(s.to(compute_dtype(q.dtype)) for s in state))
    return torch.stack(hs, dim=1), state


def mlstm_parallel(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: torch.Tensor, f: torch.Tensor
) -> torch.Tensor:
    """The quadratic parallel form, from the zero state. Materializes [B, H, S, S]; for checks only.

    With ``F_t = sum_{r<=t} log_f_r`` the decay matrix is ``D_ts = F_t - F_s + i_s`` for ``s <= t``
    and the stabilizer is ``m_t = max(F_t + m_0, max_s D_ts)`` with ``m_0 = 0``, which is the
    recurrent ``m_t`` unrolled.

    Tensors as :func:`biolm.kernels.mlstm.mlstm`; no state in or out: returns ``h`` only.
    """
    dk = q.shape[-1]
    seq = q.shape[1]
    dt = compute_dtype(q.dtype)
    qs, ks, vs = (x.to(dt).transpose(1, 2) for x in (q, k, v))  # [B, H, S, D]
    ig = i.to(dt).transpose(1, 2)  # [B, H, S]
    cum_f = torch.cumsum(F.logsigmoid(f.to(dt).transpose(1, 2)), dim=-1)

    causal = torch.ones(seq, seq, dtype=torch.bool, device=q.device).tril()
    log_d = (cum_f[..., :, None] - cum_f[..., None, :] + ig[..., None, :]).masked_fill(~causal, -math.inf)
    m = torch.maximum(cum_f, log_d.amax(dim=-1))
    weights = (qs * dk**-0.5) @ ks.transpose(-1, -2) * torch.exp(log_d - m[..., None])
    num = weights @ vs
    h = num * inv_normalizer(weights.sum(-1), m)[..., None]
    return h.transpose(1, 2).to(q.dtype)


def mlstm_chunkwise_autograd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    state: MLSTMState | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, MLSTMState]:
    """The plain-autograd chunkwise mLSTM: slower, kept as the check of
    :func:`biolm.kernels.mlstm.chunkwise.mlstm_chunkwise` (same function, same gradients).

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
    qc = to_chunks(q, n_chunks, chunk, dt) * dk**-0.5  # [B, H, NC, L, Dk]
    kc = to_chunks(k, n_chunks, chunk, dt)  # [B, H, NC, L, Dk]
    # A ones column turns the normalizer n into an extra value column: one matmul serves both.
    v_ext = to_chunks(F.pad(v.to(dt), (0, 1), value=1.0), n_chunks, chunk, dt)  # [B, H, NC, L, Dv+1]
    log_f = to_chunks(F.logsigmoid(f.to(dt)), n_chunks, chunk, dt)  # padded with log_f = 0
    b = torch.cumsum(log_f, dim=-1)  # [B, H, NC, L]
    u = to_chunks(i, n_chunks, chunk, dt) - b  # [B, H, NC, L]
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
