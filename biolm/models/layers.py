"""Building blocks of the mLSTM layer: causal convolution, block-diagonal projection, head norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
        self, x: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: x [B, S, C], state [B, K-1, C] or None. Returns y [B, S, C] and the new state."""
        if state is None:
            state = self.init_state(x.shape[0], x.device, x.dtype)
        padded = torch.cat([state.to(x.dtype), x], dim=1)
        y = F.conv1d(padded.transpose(1, 2), self.weight, self.bias, groups=self.channels).transpose(1, 2)
        new_state = padded[:, padded.shape[1] - (self.kernel_size - 1) :]
        return y, new_state


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
