"""Triton fused recurrent sLSTM (:func:`slstm_triton`): forward and backward kernels over time.

Importing this package imports triton; :mod:`biolm.kernels.slstm` only does so lazily, through the
registry, on ``backend="triton"``. On CPU the kernels run under ``TRITON_INTERPRET=1`` (float32),
which is how they are tested.
"""

from biolm.kernels.slstm.triton.autograd import slstm_triton

__all__ = ["slstm_triton"]
