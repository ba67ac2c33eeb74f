"""Row-blocked autograd Functions for the CPU: the SwiGLU feed-forward and RMSNorm.

Both work through the rows of their input in cache-sized blocks. SwiGLU:

    y = (silu(x W_g^T) * (x W_v^T)) W_down^T,    W_up = [W_g; W_v]

Plain autograd runs this as whole-tensor ops: the [N, 2F] up-projection, then silu, a product and,
in the backward, silu's derivative, two products and a concatenation of the gate and value gradients,
each a pass over tensors of tens of MB that are freshly allocated (page faults) and far larger than
the cache. On a CPU those passes cost as much as the matmuls themselves. Here every step works on a
block of rows whose temporaries stay in cache and are reused from one block to the next; the
matmuls per block are still large enough to run at full speed, and the weight gradients accumulate
over blocks with `addmm_`. Only x and the up-projection u are saved (plain autograd also keeps
silu(g) and the product); silu is recomputed in the backward, block by block.

RMSNorm's backward in plain autograd is a chain of whole-tensor ops (pow, mean, rsqrt and their
derivatives: about 6x the time of LayerNorm's fused backward at d 256); here it is one pass per block.

Same functions and, up to float rounding, the same gradients as the plain versions (tests compare
them in float64 and run gradcheck).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

# Rows per block: the block's slice of u ([rows, 2F] float32) is about this many bytes. Measured on a
# 2-core x86 CPU at d 256, F 704: 1,024 rows (5.8 MB) were 15-25 % faster than whole-tensor ops, and
# 512 to 2,048 rows within 3 % of each other.
BLOCK_BYTES = 6 * 2**20
# RMSNorm's temporaries are a few copies of a block of x: about 1 MB per block keeps them in L2.
NORM_BLOCK_BYTES = 2**20


def block_rows(hidden: int, itemsize: int) -> int:
    """Rows per block for an up-projection of width 2 * hidden (at least 64)."""
    return max(64, BLOCK_BYTES // (2 * hidden * itemsize))


class _BlockedSwiGLU(torch.autograd.Function):
    """(x [N, d], w_up [2F, d], w_down [d, F], rows) -> y [N, d]; see the module docstring."""

    @staticmethod
    def forward(ctx, x, w_up, w_down, rows):
        n, hidden = x.shape[0], w_down.shape[1]
        u = x.new_empty(n, 2 * hidden)
        y = x.new_empty(n, w_down.shape[0])
        act = x.new_empty(min(rows, n), hidden)  # silu(gate) * value, reused by every block
        for a in range(0, n, rows):
            b = min(a + rows, n)
            u_blk = torch.mm(x[a:b], w_up.t(), out=u[a:b])
            gate, value = u_blk[:, :hidden], u_blk[:, hidden:]
            act_blk = torch.ops.aten.silu.out(gate, out=act[: b - a]).mul_(value)
            torch.mm(act_blk, w_down.t(), out=y[a:b])
        ctx.save_for_backward(x, u, w_up, w_down)
        ctx.rows = rows
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, u, w_up, w_down = ctx.saved_tensors
        rows, n, hidden = ctx.rows, x.shape[0], w_down.shape[1]
        dy = dy.contiguous()
        dx = torch.empty_like(x)
        dw_up, dw_down = torch.zeros_like(w_up), torch.zeros_like(w_down)
        # Scratch reused by every block: du [rows, 2F], the hidden gradient and silu(gate) [rows, F].
        du = x.new_empty(min(rows, n), 2 * hidden)
        dh = x.new_empty(min(rows, n), hidden)
        act = x.new_empty(min(rows, n), hidden)
        for a in range(0, n, rows):
            b = min(a + rows, n)
            gate, value = u[a:b, :hidden], u[a:b, hidden:]
            dy_blk, du_blk, dh_blk = dy[a:b], du[: b - a], dh[: b - a]
            torch.mm(dy_blk, w_down, out=dh_blk)
            silu = torch.ops.aten.silu.out(gate, out=act[: b - a])
            torch.mul(dh_blk, silu, out=du_blk[:, hidden:])  # d value = dh * silu(gate)
            dw_down.addmm_(dy_blk.t(), silu.mul_(value))
            # d gate = dh * value * silu'(gate), silu' in one fused pass.
            torch.ops.aten.silu_backward.grad_input(dh_blk.mul_(value), gate, grad_input=du_blk[:, :hidden])
            dw_up.addmm_(du_blk.t(), x[a:b])
            torch.mm(du_blk, w_up, out=dx[a:b])
        return dx, dw_up, dw_down, None


def swiglu_plain(x: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """The same function in plain autograd ops (GPUs, autocast, and the reference of the tests)."""
    gate, value = F.linear(x, w_up).chunk(2, dim=-1)
    return F.linear(F.silu(gate) * value, w_down)


def swiglu(
    x: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor, rows: int | None = None
) -> torch.Tensor:
    """SwiGLU feed-forward of x [..., d] with w_up [2F, d] (gate rows first) and w_down [d, F].

    On the CPU without autocast the row-blocked Function runs; elsewhere (a GPU fuses or overlaps these
    ops itself; autocast casts per op) the plain ops do. `rows` overrides the block size (tests).
    """
    if not _use_blocked(x, w_up, w_down):
        return swiglu_plain(x, w_up, w_down)
    flat = x.reshape(-1, x.shape[-1])
    rows = rows or block_rows(w_down.shape[1], x.element_size())
    return _BlockedSwiGLU.apply(flat.contiguous(), w_up, w_down, rows).view(*x.shape[:-1], -1)


def _use_blocked(x: torch.Tensor, *weights: torch.Tensor) -> bool:
    # A GPU fuses or overlaps these ops itself, and autocast casts per op: both keep the plain ops.
    return (
        x.device.type == "cpu"
        and not torch.is_autocast_enabled("cpu")
        and all(w.dtype == x.dtype for w in weights)
    )


class _BlockedRMSNorm(torch.autograd.Function):
    """(x [N, d], weight [d], eps, rows) -> x * rsqrt(mean(x^2) + eps) * weight."""

    @staticmethod
    def forward(ctx, x, weight, eps, rows):
        y = torch.empty_like(x)
        rstd = x.new_empty(x.shape[0], 1)
        for a in range(0, x.shape[0], rows):
            x_blk = x[a : a + rows]
            torch.rsqrt(x_blk.square().mean(-1, keepdim=True).add_(eps), out=rstd[a : a + rows])
            torch.mul(x_blk, rstd[a : a + rows], out=y[a : a + rows]).mul_(weight)
        ctx.save_for_backward(x, weight, rstd)
        ctx.rows = rows
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        x, weight, rstd = ctx.saved_tensors
        dy = dy.contiguous()
        dx = torch.empty_like(x)
        dweight = torch.zeros_like(weight)
        for a in range(0, x.shape[0], ctx.rows):
            b = min(a + ctx.rows, x.shape[0])
            x_hat = x[a:b] * rstd[a:b]
            dweight += (dy[a:b] * x_hat).sum(0)
            g = dy[a:b] * weight
            # d/dx of x * r(x): r * (g - x_hat * mean(g * x_hat)), with r = rsqrt(mean(x^2) + eps).
            proj = (g * x_hat).mean(-1, keepdim=True)
            torch.mul(g.sub_(x_hat.mul_(proj)), rstd[a:b], out=dx[a:b])
        return dx, dweight, None, None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, rows: int | None = None) -> torch.Tensor:
    """RMSNorm of x [..., d] with weight [d]; row-blocked on the CPU (`rows` overrides the block)."""
    if not _use_blocked(x, weight):
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    rows = rows or max(64, NORM_BLOCK_BYTES // (x.shape[-1] * x.element_size()))
    return _BlockedRMSNorm.apply(flat, weight, eps, rows).view(x.shape)


class RMSNorm(nn.Module):
    """`torch.nn.RMSNorm` (weight only, same parameter name) computed by :func:`rms_norm`."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x [..., dim]. Returns the same shape."""
        return rms_norm(x, self.weight, self.eps)
