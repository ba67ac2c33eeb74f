"""Helpers shared by every op: the precision policy and the chunk layout of the chunkwise forms.

Kernels choose their own precision: float32 (or float64) state and accumulation whatever the input
dtype (:func:`compute_dtype`), outputs in the input dtype. Autocast (`trainer.precision=bf16-mixed`)
would re-cast the matrix products inside them to bfloat16 and mix dtypes in their in-place updates, so
it is switched off for the duration of a kernel call (:func:`outside_autocast`: forward, and the
backward of the hand-written autograd functions).

Packed variable-length batches (`cu_seqlens`) are the other shared piece, in :mod:`biolm.kernels.varlen`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F

Fn = TypeVar("Fn", bound=Callable)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype used for the state and the arithmetic: float64 for float64 inputs, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def outside_autocast(fn: Fn) -> Fn:
    """Run `fn` with CPU and CUDA autocast disabled (a no-op when autocast is off)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if not (torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")):
            return fn(*args, **kwargs)
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]


def to_chunks(x: torch.Tensor, n_chunks: int, chunk: int, dtype: torch.dtype) -> torch.Tensor:
    """[B, S, H, *] -> [B, H, NC, L, *], zero-padding the time axis to ``NC * L``."""
    x = x.to(dtype).transpose(1, 2)
    pad = n_chunks * chunk - x.shape[2]
    if pad:
        # F.pad counts dims from the last one; time is the third from the front.
        x = F.pad(x, (0, 0) * (x.dim() - 3) + (0, pad))
    return x.reshape(*x.shape[:2], n_chunks, chunk, *x.shape[3:])
