"""Kernels choose their own precision: float32 (or float64) state and accumulation whatever the input
dtype, outputs in the input dtype. Autocast (`trainer.precision=bf16-mixed`) would re-cast the matrix
products inside them to bfloat16 and mix dtypes in their in-place updates, so it is switched off for the
duration of a kernel call (forward, and the backward of the hand-written autograd functions)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)


def outside_autocast(fn: F) -> F:
    """Run `fn` with CPU and CUDA autocast disabled (a no-op when autocast is off)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        if not (torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")):
            return fn(*args, **kwargs)
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]
