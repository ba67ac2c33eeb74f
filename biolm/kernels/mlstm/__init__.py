"""mLSTM kernels: the public entry points :func:`mlstm` and :func:`mlstm_step`.

The math, including the stabilizer ``m``, is documented in :mod:`biolm.kernels.mlstm.reference`.
"""

from __future__ import annotations

import torch

from biolm.kernels.common import outside_autocast
from biolm.kernels.mlstm.chunkwise import mlstm_chunkwise
from biolm.kernels.mlstm.reference import MLSTMState, mlstm_recurrent, mlstm_step
from biolm.kernels.registry import get_triton_kernel, register_op, register_triton_kernel, resolve_backend
from biolm.kernels.varlen import run_packed

__all__ = ["MLSTMState", "mlstm", "mlstm_step"]

register_op("mlstm")

# Opt-in until the kernels have run on a real GPU (see registry._TRITON_AUTO).
register_triton_kernel("mlstm", "biolm.kernels.mlstm.triton:mlstm_chunkwise_triton", auto=False)


def _check_inputs(q, k, v, i, f, state) -> None:
    if q.dim() != 4 or k.shape != q.shape:
        raise ValueError(f"q and k must both be [B, S, H, Dk]; got {tuple(q.shape)} and {tuple(k.shape)}")
    if v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v must be [B, S, H, Dv] matching q {tuple(q.shape)}; got {tuple(v.shape)}")
    for name, g in (("i", i), ("f", f)):
        if g.shape != q.shape[:3]:
            raise ValueError(f"{name} must be [B, S, H] = {tuple(q.shape[:3])}; got {tuple(g.shape)}")
    if not (q.is_floating_point() and k.dtype == q.dtype and v.dtype == q.dtype):
        raise TypeError(f"q, k, v must share one floating dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    if state is not None and not isinstance(state, tuple):
        raise TypeError("state must be an MLSTMState (C, n, m)")


def _run(q, k, v, i, f, state, chunk_size: int, choice: str) -> tuple[torch.Tensor, MLSTMState]:
    # The triton kernels take float32 or bfloat16; float64 (checks against the reference) stays on torch.
    if choice == "torch" or q.dtype == torch.float64:
        return mlstm_chunkwise(q, k, v, i, f, state=state, chunk_size=chunk_size)
    if choice == "reference":
        return mlstm_recurrent(q, k, v, i, f, state=state)
    return get_triton_kernel("mlstm")(q, k, v, i, f, state=state, chunk_size=chunk_size)


@outside_autocast
def mlstm(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    *,
    state: MLSTMState | None = None,
    chunk_size: int = 64,
    cu_seqlens: torch.Tensor | None = None,
    backend: str = "auto",
    return_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, MLSTMState]:
    """Multi-head mLSTM over a sequence.

    With ``q`` scaled by ``Dk**-0.5`` and ``log_f = logsigmoid(f)``, the stabilizer is
    ``m_t = max(log_f_t + m_{t-1}, i_t)``, the memory ``C_t = exp(log_f_t + m_{t-1} - m_t) C_{t-1}
    + exp(i_t - m_t) k_t v_t^T`` (``n_t`` likewise with ``k_t``), and
    ``h_t = q_t^T C_t / (max(|q_t^T n_t|, exp(-m_t)) + 1e-6)``; no state means ``C, n, m = 0``.
    Every backend computes this exact function, and gradients are its exact autograd gradients (for
    q, k, v, i, f and the initial state).

    This docstring is the one description of the arguments: every other form of the op
    (:mod:`~biolm.kernels.mlstm.reference`, :mod:`~biolm.kernels.mlstm.chunkwise`,
    :mod:`~biolm.kernels.mlstm.triton`) takes the same tensors and documents only what differs.
    :func:`mlstm_step` takes them for one token, without the ``S`` axis (q, k [B, H, Dk], v [B, H, Dv],
    i, f [B, H], ``state`` positional or None) and returns ``h`` [B, H, Dv] and the new state.

    Args:
        q: Queries [B, S, H, Dk], unscaled (scaled by ``Dk**-0.5`` inside); float32, bfloat16 or float64.
        k: Keys [B, S, H, Dk], dtype of ``q``.
        v: Values [B, S, H, Dv], dtype of ``q``; Dv may differ from Dk.
        i: Input-gate pre-activations [B, S, H] (any float dtype).
        f: Forget-gate pre-activations [B, S, H] (any float dtype).
        state: Initial :class:`MLSTMState` (C [B,H,Dk,Dv], n [B,H,Dk], m [B,H]), any float dtype, or
            None for zeros; with ``cu_seqlens`` its batch is N.
        chunk_size: Chunk length of the chunkwise backends, a speed knob only: any S works (the tail
            is padded) and every chunk length computes the same function (the triton kernels round
            it to a power of two >= 16).
        cu_seqlens: Optional int tensor [N + 1] of cumulative offsets of packed sequences (B must be 1);
            the state resets at each boundary.
        backend: ``"auto"``, ``"torch"`` (chunkwise, the CPU default), ``"triton"`` (float32 and
            bfloat16) or ``"reference"`` (the recurrent loop); float64 inputs always run on torch.
        return_state: Also return the final state ([N, ...] per sequence with ``cu_seqlens``).

    Returns:
        ``h`` [B, S, H, Dv] in the dtype of ``q``, plus the final state (float32; float64 for
        float64 inputs) when ``return_state``.
    """
    _check_inputs(q, k, v, i, f, state)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int; got {chunk_size!r}")
    choice = resolve_backend("mlstm", backend, q.device)
    if cu_seqlens is None:
        h, final = _run(q, k, v, i, f, state, chunk_size, choice)
    else:

        def segment(a: int, b: int, st: MLSTMState | None) -> tuple[torch.Tensor, MLSTMState]:
            return _run(q[:, a:b], k[:, a:b], v[:, a:b], i[:, a:b], f[:, a:b], st, chunk_size, choice)

        h, final = run_packed(segment, cu_seqlens, batch=q.shape[0], seq=q.shape[1], state=state)
    return (h, final) if return_state else h
