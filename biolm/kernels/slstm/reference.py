"""Ground-truth sLSTM: the single step and the recurrent loop (correct in float64).

All forms in this package compute one function. Per head, the recurrent weights ``R[head, g]`` are a
[D_in, D_out] matrix applied to the previous hidden state as a row vector; gate ``g`` in the order
``(i, f, z, o)`` of axis 3 gets the pre-activation::

    pre_g = gates_x[..., g, :] + h_{t-1} @ R[head, g] + bias[head, g]

and with ``log_f = logsigmoid(f~)`` (a sigmoid forget gate, the xLSTM "sigmoid" variant, as in our
mLSTM) the stabilized exponential-gating recurrence (xLSTM paper, sLSTM equations) is::

    m_t = max(log_f_t + m_{t-1}, i~_t)
    i'_t = exp(i~_t - m_t),   f'_t = exp(log_f_t + m_{t-1} - m_t)
    c_t = f'_t c_{t-1} + i'_t tanh(z~_t)
    n_t = f'_t n_{t-1} + i'_t
    h_t = sigmoid(o~_t) c_t / n_t

``(c, n)`` are the cell and normalizer scaled by ``exp(-m)``; one of ``i'_t, f'_t`` is exactly 1, so
no exponent overflows, and gate pre-activations anywhere in [-1e4, 1e4] give finite values. No gate
is capped: tanh and sigmoid saturate on their own.

Initial state and the division: without a state, ``h_0 = c_0 = n_0 = m_0 = 0``. A normalizer
``n_{t-1} == 0`` means an empty memory, whose ``m_{t-1}`` carries no information; it is treated as
``m_{t-1} = -inf``, so ``m_t = i~_t``, ``f'_t = 0`` and ``i'_t = 1`` (the xLSTM reference does the same
with its ``n == 0`` branch). Taking ``m_0 = 0`` literally would let ``i'_1 = exp(i~_1 - log_f_1)``
underflow to 0 for very negative ``i~_1`` and give ``h_1 = 0 / 0``. With this rule ``n_t >= 1`` after
every step from an empty (or any ``n >= 1``) state, exactly also in floating point, since the larger
of ``i'_t, f'_t`` is exactly ``exp(0) = 1``; from any ``n > 0`` state ``n_t >= min(n_{t-1}, 1) > 0``.
So ``c_t / n_t`` needs no epsilon guard. ``h`` itself does not depend on how ``m`` is chosen (it
only rescales ``c`` and ``n`` together), but the returned state does, so every form picks the same.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from biolm.kernels.common import compute_dtype


class SLSTMState(NamedTuple):
    """Recurrent sLSTM state, float32 (float64 when the inputs are float64), each [B, H, D].

    Attributes:
        h: Hidden state (the last output, before any cast to the input dtype).
        c: Stabilized cell state.
        n: Stabilized normalizer (0 means empty).
        m: Log-space stabilizer.
    """

    h: torch.Tensor
    c: torch.Tensor
    n: torch.Tensor
    m: torch.Tensor


def zero_state(batch: int, heads: int, dim: int, dtype: torch.dtype, device: torch.device) -> SLSTMState:
    """The empty state ``h = c = n = m = 0``, each [B, H, D]."""
    return SLSTMState(*(torch.zeros(batch, heads, dim, dtype=dtype, device=device) for _ in range(4)))


def empty_aware_m(n_prev: torch.Tensor, m_prev: torch.Tensor) -> torch.Tensor:
    """``m_{t-1}``, with ``-inf`` where ``n_{t-1} == 0`` (an empty memory), elementwise; any shape."""
    return torch.where(n_prev == 0, -math.inf, m_prev)


def slstm_step(
    gates_x: torch.Tensor,
    R: torch.Tensor,
    state: SLSTMState | None = None,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, SLSTMState]:
    """One recurrent sLSTM step, the public :func:`biolm.kernels.slstm.slstm_step` (torch, any device).

    The tensors of :func:`biolm.kernels.slstm.slstm` for one token, without the ``S`` axis; returns
    ``h`` [B, H, D] and the new state. The math, the stabilizer and state 0 are in the module docstring.
    """
    batch, heads, _, dim = gates_x.shape
    dt = compute_dtype(gates_x.dtype)
    if state is None:
        state = zero_state(batch, heads, dim, dt, gates_x.device)
    h_prev, c_prev, n_prev, m_prev = (s.to(dt) for s in state)
    pre = gates_x.to(dt) + torch.einsum("bhd,hgde->bhge", h_prev, R.to(dt))
    if bias is not None:
        pre = pre + bias.to(dt)
    i_pre, f_pre, z_pre, o_pre = pre.unbind(2)

    log_f_plus_m = F.logsigmoid(f_pre) + empty_aware_m(n_prev, m_prev)
    m = torch.maximum(log_f_plus_m, i_pre)
    i_gate = torch.exp(i_pre - m)
    f_gate = torch.exp(log_f_plus_m - m)
    c = f_gate * c_prev + i_gate * torch.tanh(z_pre)
    n = f_gate * n_prev + i_gate
    h = torch.sigmoid(o_pre) * c / n
    return h.to(gates_x.dtype), SLSTMState(h, c, n, m)


def slstm_recurrent(
    gates_x: torch.Tensor,
    R: torch.Tensor,
    state: SLSTMState | None = None,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, SLSTMState]:
    """The recurrent form: a plain loop of :func:`slstm_step` over time. Slow; the ground truth
    (``backend="reference"``), exact in float64.

    Arguments as :func:`biolm.kernels.slstm.slstm`; returns ``(h, final state)``.
    """
    batch, seq, heads, _, dim = gates_x.shape
    dt = compute_dtype(gates_x.dtype)
    if state is None:
        state = zero_state(batch, heads, dim, dt, gates_x.device)
    state = SLSTMState(*(s.to(dt) for s in state))
    hs = []
    # unbind once: indexing gates_x[:, t] would make autograd scatter into full-size zeros per step.
    for gx_t in gates_x.unbind(1):
        h, state = slstm_step(gx_t, R, state, bias)
        hs.append(h)
    if not hs:
        return gates_x.new_zeros(batch, 0, heads, dim), state
    return torch.stack(hs, dim=1), state
