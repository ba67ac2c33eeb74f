"""Sequence-mixing kernels (pure torch, optional triton), selected per op by :mod:`.registry`.

Every op (``mlstm/``, ``slstm/``, ``linear_attention/``) has the same files: ``reference.py`` (the
ground truth: step, recurrent loop, and any slower forms kept as checks), ``chunkwise.py`` (the fast
torch path, the CPU default), ``triton/`` (forward, backward and step kernels) and ``__init__.py``
(the public op and its step). Helpers that every op shares sit beside them: :mod:`.common` (compute
dtype, autocast guard, chunk layout), :mod:`.varlen` (packed ``cu_seqlens`` batches) and
:mod:`.registry` (backend choice).
"""

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
