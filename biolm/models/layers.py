"""Building blocks of the mLSTM layers: causal convolution, block-diagonal projection, head norm, and
the call of the mLSTM kernels that the m and x blocks share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from biolm.kernels.mlstm import MLSTMState, mlstm, mlstm_step
from biolm.kernels.varlen import segment_offsets


def segment_positions(cu_seqlens: torch.Tensor, batch: int, seq: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each position of a packed row lies: its document and its index within that document.

    Args:
        cu_seqlens: [N + 1] cumulative offsets of the documents packed into one row.
        batch, seq: B (must be 1) and S of the packed input.

    Returns:
        doc [S] int64, the document index of each position, and pos [S] int64, the position within it.

    Raises:
        ValueError: batch size not 1 or invalid offsets.
    """
    offsets = segment_offsets(cu_seqlens, batch, seq)
    lengths = torch.tensor([b - a for a, b in zip(offsets[:-1], offsets[1:], strict=True)])
    doc = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    pos = torch.arange(seq) - torch.tensor(offsets[:-1])[doc]
    return doc.to(cu_seqlens.device), pos.to(cu_seqlens.device)


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


class BlockDiagonalLinear(nn.Module):
    """Linear map whose weight is block-diagonal with square blocks (no bias).

    The xLSTM mLSTM layer projects q, k and v this way: it mixes only channels within a small block,
    which costs `dim * block_size` parameters instead of `dim**2`.
    """

    def __init__(self, dim: int, block_size: int) -> None:
        super().__init__()
        if dim % block_size:
            raise ValueError(f"dim {dim} is not a multiple of block_size {block_size}")
        self.block_size = block_size
        self.weight = nn.Parameter(torch.empty(dim // block_size, block_size, block_size))
        nn.init.normal_(self.weight, std=(2 / (5 * block_size)) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = x.unflatten(-1, (self.weight.shape[0], self.block_size))
        return torch.einsum("...ni,noi->...no", blocks, self.weight).flatten(-2)


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


def run_mlstm(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    state: MLSTMState | None,
    cu_seqlens: torch.Tensor | None,
    chunk_size: int,
    backend: str,
) -> tuple[torch.Tensor, MLSTMState | None]:
    """The mLSTM over q, k [B, S, H, Dk], v [B, S, H, Dv], gates [B, S, H], as the blocks call it:
    packed documents (no state out), one step from a state (the fused step kernel), or chunkwise.

    Returns:
        h [B, S, H, Dv] and the new state (None with `cu_seqlens`).
    """
    if cu_seqlens is not None:
        return mlstm(q, k, v, i, f, chunk_size=chunk_size, cu_seqlens=cu_seqlens, backend=backend), None
    if q.shape[1] == 1 and state is not None:
        h, state = mlstm_step(q[:, 0], k[:, 0], v[:, 0], i[:, 0], f[:, 0], state)
        return h.unsqueeze(1), state
    return mlstm(q, k, v, i, f, state=state, chunk_size=chunk_size, backend=backend, return_state=True)
