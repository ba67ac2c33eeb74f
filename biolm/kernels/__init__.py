"""Sequence-mixing kernels (pure torch, optional triton), selected per op by :mod:`.registry`."""

from biolm.kernels.linear_attention import LinearAttentionState, linear_attention, linear_attention_step
from biolm.kernels.mlstm import MLSTMState, mlstm, mlstm_step
from biolm.kernels.slstm import SLSTMState, slstm, slstm_step

__all__ = [
    "LinearAttentionState",
    "MLSTMState",
    "SLSTMState",
    "linear_attention",
    "linear_attention_step",
    "mlstm",
    "mlstm_step",
    "slstm",
    "slstm_step",
]
