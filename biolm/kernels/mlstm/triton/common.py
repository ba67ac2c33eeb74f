"""Helpers shared by the triton mLSTM kernels: padding, buffer allocation and jitted math."""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

EPS = 1e-6
LOG_EPS = math.log(EPS)

# Tests set this so that any element a kernel forgets to write shows up as NaN.
FILL_NAN = False


def interpreting() -> bool:
    """Whether triton runs on the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def dot_precision() -> str:
    """How float32 dot operands are multiplied: ``ieee`` under the interpreter (exact checks); on GPUs
    ``tf32x3`` (three TF32 products, near-float32 accuracy), because plain TF32 put the GPU float32
    results at 3-6e-3 of the reference, over the contract's 2e-3. bfloat16 operands always run on
    the bf16 tensor cores (this setting does not apply to them): bf16 is the fast path."""
    return "ieee" if interpreting() else "tf32x3"


def padded(n: int) -> int:
    """Block size for a dim of ``n``: a power of two, at least 16 (the smallest ``tl.dot`` operand)."""
    return max(16, triton.next_power_of_2(n))


def chunk_len(chunk_size: int, seq: int) -> int:
    """Chunk length used by the kernels: a power of two >= 16, no longer than needed.

    Any chunk length computes the same function (the stabilizer is the recurrent one), so rounding
    the requested ``chunk_size`` only changes speed, never results.
    """
    return padded(min(chunk_size, max(seq, 1)))


def tile_configs(options: list[tuple[dict[str, int], int]]) -> list[triton.Config]:
    """Autotuning candidates: ``(block sizes, num_warps)`` pairs on a GPU, one small config interpreted.

    The interpreter gets 16-wide tiles, so that tests at small head dims still cross tile edges, and a
    single config (autotuning needs a GPU). On a GPU, a config that does not fit the chip (shared
    memory, registers) is dropped by the autotuner, so the list may be generous.
    """
    if interpreting():
        return [triton.Config({name: 16 for name in options[0][0]}, num_warps=1)]
    return [triton.Config(dict(blocks), num_warps=warps) for blocks, warps in options]


def alloc(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An output buffer: uninitialised, or NaN-filled when :data:`FILL_NAN` is set (tests)."""
    if FILL_NAN:
        return torch.full(shape, math.nan, dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


@triton.jit
def logsigmoid(x):
    """``log(sigmoid(x)) = min(x, 0) - log(1 + exp(-|x|))``, finite for every finite ``x``."""
    return tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x)))


@triton.jit
def inv_normalizer(d, m, eps: tl.constexpr, log_eps: tl.constexpr):
    """``1 / (max(|d|, exp(-m)) + eps)`` as in the reference helper, overflow-free for any ``m``."""
    abs_d = tl.abs(d)
    use_d = abs_d > tl.exp(-m)
    floor = 1.0 / (1.0 + tl.exp(-(m + log_eps))) / eps
    return tl.where(use_d, 1.0 / (abs_d + eps), floor)
