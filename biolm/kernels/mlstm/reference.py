"""Ground-truth mLSTM forms: the single step, the recurrent loop and the quadratic parallel form.

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


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype used for the state and the arithmetic: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


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
    """One recurrent mLSTM step (see the module docstring for the math and the stabilizer).

    Args:
        q: Queries [B, H, Dk] (unscaled; scaled by ``Dk**-0.5`` here).
        k: Keys [B, H, Dk].
        v: Values [B, H, Dv].
        i: Input-gate pre-activations [B, H].
        f: Forget-gate pre-activations [B, H].
        state: Previous state, or None for the zero state.

    Returns:
        ``h`` [B, H, Dv] in the dtype of ``q``, and the new state (float32, float64 for float64 ``q``).
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
    """The recurrent form: a plain loop of :func:`mlstm_step` over time. Slow; the ground truth.

    Args:
        q: Queries [B, S, H, Dk].
        k: Keys [B, S, H, Dk].
        v: Values [B, S, H, Dv].
        i: Input-gate pre-activations [B, S, H].
        f: Forget-gate pre-activations [B, S, H].
        state: Initial state, or None for the zero state.

    Returns:
        ``h`` [B, S, H, Dv] in the dtype of ``q``, and the final state.
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

    Args:
        q: Queries [B, S, H, Dk].
        k: Keys [B, S, H, Dk].
        v: Values [B, S, H, Dv].
        i: Input-gate pre-activations [B, S, H].
        f: Forget-gate pre-activations [B, S, H].

    Returns:
        ``h`` [B, S, H, Dv] in the dtype of ``q``.
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
