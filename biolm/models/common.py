"""What every block type shares: causal convolution, norms, the SwiGLU feed-forward, the residual block.

Three of these have a CPU fast path, an autograd Function kept beside the plain torch function it
replaces (same function, same gradients up to float rounding; tests compare them in float64):

- :class:`CausalConv1d`: ``_ShiftedTapConv`` for ``F.conv1d``;
- :func:`rms_norm`: ``_BlockedRMSNorm`` for ``F.rms_norm``;
- :func:`swiglu`: ``_BlockedSwiGLU`` for :func:`swiglu_plain`.

The last two are row-blocked. Both work through the rows of their input in cache-sized blocks. SwiGLU:

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
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from biolm.kernels.varlen import segment_positions
from biolm.models.bidirectional import run_mixer
from biolm.models.config import ModelConfig

# Rows per block: the block's slice of u ([rows, 2F] float32) is about this many bytes. Measured on a
# 2-core x86 CPU at d 256, F 704: 1,024 rows (5.8 MB) were 15-25 % faster than whole-tensor ops, and
# 512 to 2,048 rows within 3 % of each other.
BLOCK_BYTES = 6 * 2**20
# RMSNorm's temporaries are a few copies of a block of x: about 1 MB per block keeps them in L2.
NORM_BLOCK_BYTES = 2**20


def block_rows(hidden: int, itemsize: int) -> int:
    """Rows per block for an up-projection of width 2 * hidden (at least 64)."""
    return max(64, BLOCK_BYTES // (2 * hidden * itemsize))


class _ShiftedTapConv(torch.autograd.Function):
    """Depthwise convolution of padded [B, S + K - 1, C] with weight [C, K] and bias [C] -> [B, S, C].

    `y[:, t] = bias + sum_j padded[:, t + j] * weight[:, j]` (F.conv1d's cross-correlation), computed as
    K multiply-adds of time-shifted views in the [B, S, C] layout. On the CPU this is several times
    faster than F.conv1d, which wants [B, C, S] (two transposed copies) and whose depthwise backward
    is slow; the backward here is K multiply-adds for the input and K dot products for the taps.
    """

    @staticmethod
    def forward(ctx, padded, weight, bias):
        taps = weight.shape[1]
        seq = padded.shape[1] - taps + 1
        y = torch.mul(padded[:, taps - 1 :], weight[:, taps - 1]).add_(bias)
        for j in range(taps - 1):
            y.addcmul_(padded[:, j : j + seq], weight[:, j])
        ctx.save_for_backward(padded, weight)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        padded, weight = ctx.saved_tensors
        taps = weight.shape[1]
        seq = dy.shape[1]
        d_padded = torch.zeros_like(padded)
        d_weight = torch.empty_like(weight)
        for j in range(taps):
            d_padded[:, j : j + seq].addcmul_(dy, weight[:, j])
            d_weight[:, j] = (dy * padded[:, j : j + seq]).sum((0, 1))
        return d_padded, d_weight, dy.sum((0, 1))


class CausalConv1d(nn.Module):
    """Depthwise causal convolution over time with a carried state.

    The state is the last `kernel_size - 1` inputs, so that a sequence processed in pieces gives
    exactly the output of one call.
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.channels = channels
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(channels, 1, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.normal_(self.weight, std=kernel_size**-0.5)

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros(batch_size, self.kernel_size - 1, self.channels, device=device, dtype=dtype)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None, cu_seqlens: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Causal convolution of x, continuing from `state`.

        Args:
            x: [B, S, C].
            state: [B, K-1, C] or None (zeros).
            cu_seqlens: optional [N + 1] offsets of documents packed into one row (B = 1, state None);
                no tap reaches back past the start of its document.

        Returns:
            y [B, S, C] and the new state [B, K-1, C] (None with `cu_seqlens`).
        """
        if cu_seqlens is not None:
            return self._forward_packed(x, state, cu_seqlens), None
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        padded = torch.cat([state.to(x.dtype), x], dim=1)
        if padded.device.type == "cpu" and padded.dtype == self.weight.dtype:
            y = _ShiftedTapConv.apply(padded, self.weight[:, 0], self.bias)
        else:
            y = F.conv1d(padded.transpose(1, 2), self.weight, self.bias, groups=self.channels).transpose(1, 2)
        new_state = padded[:, padded.shape[1] - (self.kernel_size - 1) :]
        return y, new_state

    def _forward_packed(
        self, x: torch.Tensor, state: torch.Tensor | None, cu_seqlens: torch.Tensor
    ) -> torch.Tensor:
        if state is not None:
            raise ValueError("CausalConv1d: pass either state or cu_seqlens, not both")
        _, pos = segment_positions(cu_seqlens, x.shape[0], x.shape[1])
        pos = pos.to(x.device)
        y = self.bias.to(x.dtype).expand_as(x)
        for lag in range(self.kernel_size):
            # Tap `lag` reads x[t - lag]; it must stay zero (as the zero state would be) when that input
            # belongs to an earlier document.
            shifted = F.pad(x, (0, 0, lag, 0))[:, : x.shape[1]]
            keep = (pos >= lag).to(x.dtype)[None, :, None]
            y = y + shifted * keep * self.weight[:, 0, self.kernel_size - 1 - lag]
        return y


class MultiHeadNorm(nn.Module):
    """Layer norm over each head's channels separately, with one learned scale per channel."""

    def __init__(self, num_heads: int, head_dim: int, eps: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_heads * head_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Args: h [..., H, D]. Returns [..., H*D]."""
        normed = F.layer_norm(h.float(), (self.head_dim,), eps=self.eps).to(h.dtype)
        return normed.flatten(-2) * self.weight


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


def rotate_pairs(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Rotary position embedding over the last axis, adjacent channel pairs (0, 1), (2, 3), ...: pair j
    of a token at position p turns by the angle `p * base ** (-2j / W)` (Prot-xLSTM's `rot_1d`).

    Args:
        x: [B, S, W], W even.
        positions: [B, S] or [S] integer positions.

    Returns:
        [B, S, W] in the dtype of x.
    """
    width = x.shape[-1]
    inv_freq = base ** (-torch.arange(0, width, 2, device=x.device, dtype=torch.float64) / width)
    angle = positions.to(device=x.device, dtype=torch.float64)[..., None] * inv_freq  # float64: exact
    dt = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    cos, sin = angle.cos().to(dt), angle.sin().to(dt)
    real, imag = x.to(dt).unflatten(-1, (width // 2, 2)).unbind(-1)
    turned = torch.stack([real * cos - imag * sin, real * sin + imag * cos], dim=-1)
    return turned.flatten(-2).to(x.dtype)


class RMSNorm(nn.Module):
    """`torch.nn.RMSNorm` (weight only, same parameter name) computed by :func:`rms_norm`."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x [..., dim]. Returns the same shape."""
        return rms_norm(x, self.weight, self.eps)


def init_out_proj(linear: nn.Linear, config: ModelConfig) -> None:
    # Scaled so that the residual stream's variance does not grow with depth (Wang init).
    nn.init.normal_(linear.weight, std=2 / config.n_layers / math.sqrt(config.d_model))


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


class GatedFeedForward(nn.Module):
    """Gated feed-forward: up-projection to (gate, value), act(gate) * value, down-projection; act is
    silu (SwiGLU) or, with `ffn_activation="gelu"`, the exact GELU."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gelu = config.ffn_activation == "gelu"
        d, ffn = config.d_model, config.ffn_dim
        self.proj_up = nn.Linear(d, 2 * ffn, bias=False)
        self.proj_down = nn.Linear(ffn, d, bias=False)
        nn.init.normal_(self.proj_up.weight, std=(2 / (5 * d)) ** 0.5)
        init_out_proj(self.proj_down, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x [B, S, d]. Returns [B, S, d]."""
        if self.gelu:
            gate, value = F.linear(x, self.proj_up.weight).chunk(2, dim=-1)
            return F.linear(F.gelu(gate) * value, self.proj_down.weight)
        # Row-blocked on the CPU (`swiglu` above): the elementwise passes otherwise cost as much as
        # the matmuls.
        return swiglu(x, self.proj_up.weight, self.proj_down.weight)


class ResidualBlock(nn.Module):
    """`x + mixer(LN(x))` then `x + ffn(LN(x))`, the `s`, `a`, `t` and `x` blocks; subclasses set `mixer`."""

    mixer: nn.Module

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=False)
        self.ffn_norm = nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=False)
        self.ffn = GatedFeedForward(config)
        self.dropout = nn.Dropout(config.dropout)
        self.bidirectional = config.bidirectional

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype):
        return self.mixer.init_state(batch_size, device, dtype)

    def forward(
        self,
        x: torch.Tensor,
        state=None,
        cu_seqlens: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ):
        """Mixer then feed-forward; only the mixer mixes positions.

        Args:
            x: [B, S, d].
            state: from a previous call, or None to start fresh.
            cu_seqlens: optional [N + 1] offsets of documents packed into one row (B = 1); nothing crosses
                a document boundary. Not allowed together with `state`.
            position_ids: optional [B, S] int positions; only the attention mixer (RoPE) uses them.

        Returns:
            [B, S, d] and the new state (None with `cu_seqlens`, and with `config.bidirectional`, where
            the mixer also runs over the flipped sequence; see `biolm.models.bidirectional`).
        """
        if cu_seqlens is not None and state is not None:
            raise ValueError(f"{type(self).__name__}: pass either state or cu_seqlens, not both")
        y, state = run_mixer(self.mixer, self.norm(x), state, cu_seqlens, position_ids, self.bidirectional)
        x = x + self.dropout(y)
        return x + self.dropout(self.ffn(self.ffn_norm(x))), state
