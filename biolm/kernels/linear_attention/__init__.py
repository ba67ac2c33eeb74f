"""Linear attention kernels (plain and gated): :func:`linear_attention` and :func:`linear_attention_step`.

The math, including the normalizer, is documented in :mod:`biolm.kernels.linear_attention.reference`.
"""

from __future__ import annotations

import torch

from biolm.kernels.common import outside_autocast
from biolm.kernels.linear_attention.chunkwise import linear_attention_chunkwise
from biolm.kernels.linear_attention.reference import (
    LinearAttentionState,
    linear_attention_recurrent,
    linear_attention_step,
)
from biolm.kernels.registry import get_triton_kernel, register_op, register_triton_kernel, resolve_backend
from biolm.kernels.varlen import run_packed

__all__ = ["LinearAttentionState", "linear_attention", "linear_attention_step"]

register_op("linear_attention")
register_triton_kernel(
    "linear_attention", "biolm.kernels.linear_attention.triton:linear_attention_chunkwise_triton", auto=False
)


def _check_inputs(q, k, v, log_decay, state) -> None:
    if q.dim() != 4 or k.shape != q.shape:
        raise ValueError(f"q and k must both be [B, S, H, Dk]; got {tuple(q.shape)} and {tuple(k.shape)}")
    if v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v must be [B, S, H, Dv] matching q {tuple(q.shape)}; got {tuple(v.shape)}")
    if log_decay is not None and log_decay.shape != q.shape[:3]:
        raise ValueError(f"log_decay must be [B, S, H] = {tuple(q.shape[:3])}; got {tuple(log_decay.shape)}")
    if not (q.is_floating_point() and k.dtype == q.dtype and v.dtype == q.dtype):
        raise TypeError(f"q, k, v must share one floating dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if state is not None and not isinstance(state, tuple):
        raise TypeError("state must be a LinearAttentionState (S, z)")


def _run(q, k, v, log_decay, state, normalize, scale, chunk_size: int, choice: str):
    kwargs = dict(log_decay=log_decay, state=state, normalize=normalize, scale=scale)
    if choice == "torch":
        return linear_attention_chunkwise(q, k, v, chunk_size=chunk_size, **kwargs)
    if choice == "reference":
        return linear_attention_recurrent(q, k, v, **kwargs)
    return get_triton_kernel("linear_attention")(q, k, v, chunk_size=chunk_size, **kwargs)


@outside_autocast
def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    log_decay: torch.Tensor | None = None,
    state: LinearAttentionState | None = None,
    normalize: bool = False,
    scale: float | None = None,
    chunk_size: int = 64,
    cu_seqlens: torch.Tensor | None = None,
    backend: str = "auto",
    return_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, LinearAttentionState]:
    """Causal multi-head linear attention, plain or with a per-head scalar decay.

    With ``g = log_decay`` (0 when None): ``S_t = exp(g_t) S_{t-1} + k_t v_t^T``,
    ``z_t = exp(g_t) z_{t-1} + k_t`` and ``h_t = (scale q_t)^T S_t``, divided by
    ``max(|(scale q_t)^T z_t|, 1)`` when ``normalize``; no state means ``S, z = 0``. Every backend
    computes this exact function, and gradients are its exact autograd gradients (for q, k, v,
    log_decay and the initial state).

    This docstring is the one description of the arguments: every other form of the op
    (:mod:`~biolm.kernels.linear_attention.reference`, :mod:`~biolm.kernels.linear_attention.chunkwise`,
    :mod:`~biolm.kernels.linear_attention.triton`) takes the same arguments and documents only what
    differs. :func:`linear_attention_step` takes them for one token, without the ``S`` axis (q, k
    [B, H, Dk], v [B, H, Dv], log_decay [B, H]) and returns ``h`` [B, H, Dv] and the new state.

    Args:
        q: Queries [B, S, H, Dk], unscaled (multiplied by ``scale`` inside); float32, bfloat16 or
            float64.
        k: Keys [B, S, H, Dk], dtype of ``q``.
        v: Values [B, S, H, Dv], dtype of ``q``; Dv may differ from Dk.
        log_decay: Per-head log decay [B, S, H], e.g. ``logsigmoid`` of a pre-activation. Expected
            ``<= 0`` (decay in (0, 1]); positive values are not clamped, only not guarded against
            overflow. None for plain (undecayed) linear attention.
        state: Initial :class:`LinearAttentionState` (S [B,H,Dk,Dv], z [B,H,Dk]), any float dtype, or
            None for zeros; with ``cu_seqlens`` its batch is N. ``z`` is tracked whatever
            ``normalize`` is, so a state can pass between calls with either setting.
        normalize: Divide each output by ``max(|(scale q_t)^T z_t|, 1)``.
        scale: Query scale; default ``Dk**-0.5``.
        chunk_size: Chunk length of the chunkwise backends, a speed knob only: any S works (the tail
            is padded) and every chunk length computes the same function (the triton kernels round
            it to a power of two >= 16).
        cu_seqlens: Optional int tensor [N + 1] of cumulative offsets of packed sequences (B must be 1);
            the state resets at each boundary.
        backend: ``"auto"``, ``"torch"`` (chunkwise, the CPU default), ``"triton"`` (float32 and
            bfloat16; float64 stays on torch) or ``"reference"`` (the recurrent loop).
        return_state: Also return the final state ([N, ...] per sequence with ``cu_seqlens``).

    Returns:
        ``h`` [B, S, H, Dv] in the dtype of ``q``, plus the final state (float32; float64 for
        float64 inputs) when ``return_state``.
    """
    _check_inputs(q, k, v, log_decay, state)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int; got {chunk_size!r}")
    choice = resolve_backend("linear_attention", backend, q.device)
    if cu_seqlens is None:
        h, final = _run(q, k, v, log_decay, state, normalize, scale, chunk_size, choice)
    else:

        def segment(a: int, b: int, st: LinearAttentionState | None):
            decay = None if log_decay is None else log_decay[:, a:b]
            return _run(q[:, a:b], k[:, a:b], v[:, a:b], decay, st, normalize, scale, chunk_size, choice)

        h, final = run_packed(segment, cu_seqlens, batch=q.shape[0], seq=q.shape[1], state=state)
    return (h, final) if return_state else h
