"""Triton linear attention: chunkwise forward/backward (:func:`linear_attention_chunkwise_triton`), step.

Importing this package imports triton; :mod:`biolm.kernels.linear_attention` only names it in the
registry, imported lazily on first use. On CPU the kernels run under ``TRITON_INTERPRET=1`` (float32),
which is how they are tested.
"""

from biolm.kernels.linear_attention.triton.autograd import linear_attention_chunkwise_triton
from biolm.kernels.linear_attention.triton.step import linear_attention_step_triton

__all__ = ["linear_attention_chunkwise_triton", "linear_attention_step_triton"]
