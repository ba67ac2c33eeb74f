"""Triton mLSTM kernels: chunkwise forward/backward (:func:`mlstm_chunkwise_triton`) and a fused step.

Importing this package imports triton; :mod:`biolm.kernels.mlstm` only does so lazily, on first CUDA
use. On CPU the kernels run under ``TRITON_INTERPRET=1`` (float32), which is how they are tested.
"""

from biolm.kernels.mlstm.triton.autograd import mlstm_chunkwise_triton
from biolm.kernels.mlstm.triton.step import mlstm_step_triton

__all__ = ["mlstm_chunkwise_triton", "mlstm_step_triton"]
