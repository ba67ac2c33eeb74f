"""Sequence-mixing kernels (pure torch, optional triton), selected per op by :mod:`.registry`."""

from biolm.kernels.mlstm import MLSTMState, mlstm, mlstm_step

__all__ = ["MLSTMState", "mlstm", "mlstm_step"]
