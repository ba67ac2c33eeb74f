"""sLSTM kernels: the public entry points :func:`slstm` and :func:`slstm_step`.

The math, including the stabilizer ``m`` and the empty-state rule, is documented in
:mod:`biolm.kernels.slstm.reference`.
"""

from __future__ import annotations

import torch

from biolm.kernels.common import outside_autocast
from biolm.kernels.registry import get_triton_kernel, register_op, register_triton_kernel, resolve_backend
from biolm.kernels.slstm.chunkwise import slstm_fused
from biolm.kernels.slstm.reference import SLSTMState, slstm_recurrent, slstm_step
from biolm.kernels.varlen import run_packed

__all__ = ["SLSTMState", "slstm", "slstm_step"]

register_op("slstm")
register_triton_kernel("slstm", "biolm.kernels.slstm.triton:slstm_triton", auto=False)


def _check_inputs(gates_x, R, bias, state) -> None:
    if gates_x.dim() != 5 or gates_x.shape[3] != 4:
        raise ValueError(f"gates_x must be [B, S, H, 4, D]; got {tuple(gates_x.shape)}")
    heads, dim = gates_x.shape[2], gates_x.shape[4]
    if R.shape != (heads, 4, dim, dim):
        raise ValueError(f"R must be [H, 4, D, D] = {(heads, 4, dim, dim)}; got {tuple(R.shape)}")
    if bias is not None and bias.shape != (heads, 4, dim):
        raise ValueError(f"bias must be [H, 4, D] = {(heads, 4, dim)}; got {tuple(bias.shape)}")
    if not gates_x.is_floating_point():
        raise TypeError(f"gates_x must be floating point; got {gates_x.dtype}")
    if state is not None and not (isinstance(state, tuple) and len(state) == 4):
        raise TypeError("state must be an SLSTMState (h, c, n, m)")


def _run(gates_x, R, bias, state, choice: str) -> tuple[torch.Tensor, SLSTMState]:
    if choice == "torch":
        return slstm_fused(gates_x, R, state=state, bias=bias)
    if choice == "reference":
        return slstm_recurrent(gates_x, R, state=state, bias=bias)
    return get_triton_kernel("slstm")(gates_x, R, state=state, bias=bias)


@outside_autocast
def slstm(
    gates_x: torch.Tensor,
    R: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    state: SLSTMState | None = None,
    cu_seqlens: torch.Tensor | None = None,
    backend: str = "auto",
    return_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, SLSTMState]:
    """Multi-head sLSTM over a sequence, with block-diagonal (per-head) recurrent weights.

    Gate ``g`` of axis 3, in the order (i, f, z, o), has the pre-activation
    ``pre_g = gates_x[..., g, :] + h_{t-1} @ R[head, g] + bias[head, g]`` (``R[head, g]`` is
    [D_in, D_out], acting on the row vector ``h_{t-1}`` of that head). With ``log_f = logsigmoid(f~)``:
    ``m_t = max(log_f + m_{t-1}, i~)``, ``c_t = exp(log_f + m_{t-1} - m_t) c_{t-1} + exp(i~ - m_t)
    tanh(z~)``, ``n_t`` likewise with 1 for ``tanh(z~)``, and ``h_t = sigmoid(o~) c_t / n_t``. No state
    means zeros; ``n_{t-1} == 0`` marks an empty memory, for which ``m_t = i~`` (so ``n_t >= 1`` and no
    division guard is needed). Every backend computes this exact function, and gradients are its
    exact autograd gradients (for gates_x, R, bias and the initial state).

    This docstring is the one description of the arguments: every other form of the op
    (:mod:`~biolm.kernels.slstm.reference`, :mod:`~biolm.kernels.slstm.chunkwise`,
    :mod:`~biolm.kernels.slstm.triton`) takes the same tensors and documents only what differs.
    :func:`slstm_step` takes them for one token, without the ``S`` axis (``gates_x`` [B, H, 4, D];
    ``state`` positional or None, then ``bias``) and returns ``h`` [B, H, D] and the new state.

    Args:
        gates_x: Input part of the gate pre-activations [B, S, H, 4, D], gates in the order
            (i, f, z, o) on axis 3; float32, bfloat16 or float64.
        R: Recurrent weights [H, 4, D, D] (any float dtype); ``R[head, g]`` is [D_in, D_out]:
            ``h_{t-1} @ R[head, g]``.
        bias: Optional gate bias [H, 4, D].
        state: Initial :class:`SLSTMState` (h, c, n, m), each [B, H, D], any float dtype, or None for
            the empty state; with ``cu_seqlens`` its batch is N.
        cu_seqlens: Optional int tensor [N + 1] of cumulative offsets of packed sequences (B must be 1);
            the state resets at each boundary.
        backend: ``"auto"``, ``"torch"`` (the fused loop, the CPU default), ``"triton"`` (float32
            and bfloat16; float64 stays on torch) or ``"reference"`` (the plain recurrent loop).
        return_state: Also return the final state ([N, H, D] per sequence with ``cu_seqlens``).

    Returns:
        ``h`` [B, S, H, D] in the dtype of ``gates_x``, plus the final state (float32; float64 for
        float64 inputs) when ``return_state``.
    """
    _check_inputs(gates_x, R, bias, state)
    choice = resolve_backend("slstm", backend, gates_x.device)
    if cu_seqlens is None:
        h, final = _run(gates_x, R, bias, state, choice)
    else:

        def segment(a: int, b: int, st: SLSTMState | None) -> tuple[torch.Tensor, SLSTMState]:
            return _run(gates_x[:, a:b], R, bias, st, choice)

        h, final = run_packed(segment, cu_seqlens, batch=gates_x.shape[0], seq=gates_x.shape[1], state=state)
    return (h, final) if return_state else h
