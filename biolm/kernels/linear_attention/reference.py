"""Ground-truth linear attention: the single step and the recurrent loop.

All forms in this package compute one function. With ``g = log_decay`` (``g = 0`` when omitted,
the plain, undecayed case) and ``scale`` (default ``Dk**-0.5``)::

    S_t = exp(g_t) S_{t-1} + k_t v_t^T          [Dk, Dv]
    z_t = exp(g_t) z_{t-1} + k_t                [Dk]
    o_t = (scale q_t)^T S_t
    d_t = (scale q_t)^T z_t
    h_t = o_t                                   normalize=False
    h_t = o_t / max(|d_t|, 1)                   normalize=True

``g`` is a per-head log decay, ``[B, S, H]``; the caller passes e.g. ``logsigmoid`` of a
pre-activation. ``g <= 0`` is what the op expects: then every exponent the chunkwise form evaluates is
``<= 0`` and nothing overflows, for ``g`` down to ``-inf`` in practice. Positive ``g`` is not clamped
(clamping would silently change the function): it is computed exactly, and is stable as long as the
growth ``exp(sum g)`` fits the dtype.

The normalizer uses the same ``max(|.|, 1)`` floor idea as mLSTM: dividing by ``|d_t|`` alone blows up
where ``q_t`` is orthogonal to ``z_t``, while the floor keeps ``h_t`` finite with finite gradients
and leaves it untouched wherever ``|d_t| >= 1``. ``z`` is tracked whether or not ``normalize`` is set,
so a state is one thing and can be passed between calls with either setting. Without an initial
state ``S_0 = 0, z_0 = 0``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from biolm.kernels.common import compute_dtype


class LinearAttentionState(NamedTuple):
    """Recurrent linear-attention state, float32 (float64 when the inputs are float64).

    Attributes:
        S: Decayed sum of ``k v^T``, [B, H, Dk, Dv].
        z: Decayed sum of ``k`` (the normalizer), [B, H, Dk].
    """

    S: torch.Tensor
    z: torch.Tensor


def zero_state(
    batch: int, heads: int, dk: int, dv: int, dtype: torch.dtype, device: torch.device
) -> LinearAttentionState:
    """The empty state ``S_0 = 0, z_0 = 0`` with shapes [B, H, Dk, Dv] and [B, H, Dk]."""
    return LinearAttentionState(
        torch.zeros(batch, heads, dk, dv, dtype=dtype, device=device),
        torch.zeros(batch, heads, dk, dtype=dtype, device=device),
    )


def default_scale(dk: int, scale: float | None) -> float:
    """``scale`` if given, else ``Dk**-0.5``."""
    return dk**-0.5 if scale is None else float(scale)


def apply_normalizer(o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``o / max(|d|, 1)``: the one normalizer shared by every face, so that all agree exactly.

    Args:
        o: Unnormalized output, [..., Dv].
        d: ``(scale q)^T z``, [...].

    Returns:
        Tensor of the shape of ``o``.
    """
    return o / d.abs().clamp_min(1.0)[..., None]


def linear_attention_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    log_decay: torch.Tensor | None = None,
    state: LinearAttentionState | None = None,
    normalize: bool = False,
    scale: float | None = None,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """One recurrent linear-attention step, the public
    :func:`biolm.kernels.linear_attention.linear_attention_step` (torch, any device).

    The arguments of :func:`biolm.kernels.linear_attention.linear_attention` for one token, without
    the ``S`` axis; returns ``h`` [B, H, Dv] and the new state. The math is in the module docstring.
    """
    batch, heads, dk = q.shape
    dv = v.shape[-1]
    dt = compute_dtype(q.dtype)
    if state is None:
        state = zero_state(batch, heads, dk, dv, dt, q.device)
    s_prev, z_prev = (x.to(dt) for x in state)
    qs = q.to(dt) * default_scale(dk, scale)
    k, v = k.to(dt), v.to(dt)
    if log_decay is not None:
        decay = torch.exp(log_decay.to(dt))
        s_prev = decay[..., None, None] * s_prev
        z_prev = decay[..., None] * z_prev
    s = s_prev + k[..., :, None] * v[..., None, :]
    z = z_prev + k
    h = torch.einsum("bhk,bhkv->bhv", qs, s)
    if normalize:
        h = apply_normalizer(h, (qs * z).sum(-1))
    return h.to(q.dtype), LinearAttentionState(s, z)


def linear_attention_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    log_decay: torch.Tensor | None = None,
    state: LinearAttentionState | None = None,
    normalize: bool = False,
    scale: float | None = None,
) -> tuple[torch.Tensor, LinearAttentionState]:
    """The recurrent form: a plain loop of :func:`linear_attention_step` over time. Slow; the ground
    truth (``backend="reference"``), exact in float64.

    Arguments as :func:`biolm.kernels.linear_attention.linear_attention` (no chunking); returns
    ``(h, final state)``.
    """
    batch, seq, heads, dk = q.shape
    dv = v.shape[-1]
    dt = compute_dtype(q.dtype)
    if state is None:
        state = zero_state(batch, heads, dk, dv, dt, q.device)
    state = LinearAttentionState(*(x.to(dt) for x in state))
    gs = [None] * seq if log_decay is None else log_decay.unbind(1)
    hs = []
    for q_t, k_t, v_t, g_t in zip(q.unbind(1), k.unbind(1), v.unbind(1), gs, strict=True):
        h, state = linear_attention_step(
            q_t, k_t, v_t, log_decay=g_t, state=state, normalize=normalize, scale=scale
        )
        hs.append(h)
    if not hs:
        return q.new_zeros(batch, 0, heads, dv), state
    return torch.stack(hs, dim=1), state
