"""The sLSTM block (`s`, xLSTM paper): its layer and its state.

Like the `a` and `t` blocks it is a :class:`~biolm.models.common.ResidualBlock`: `x + mixer(LN(x))`
followed by `x + GatedFeedForward(LN(x))` (post-up-projection, as the xLSTM paper's sLSTM block). It
maps [B, S, d] to [B, S, d] and carries a state, so that a sequence fed in pieces (or token by token)
gives exactly the output of one call.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from biolm.kernels.common import compute_dtype
from biolm.kernels.slstm import SLSTMState, slstm, slstm_step
from biolm.models.common import CausalConv1d, MultiHeadNorm, ResidualBlock
from biolm.models.config import ModelConfig


class SLSTMBlockState(NamedTuple):
    """Recurrent state of one sLSTM block: the convolution's input tail and the sLSTM cell."""

    conv: torch.Tensor  # [B, K-1, d]
    cell: SLSTMState  # h, c, n, m, each [B, H, D]


class SLSTMLayer(nn.Module):
    """sLSTM layer (xLSTM paper): causal conv + swish feeds the i and f gates, x feeds z and o.

    Gate input projections are headwise (block-diagonal, one [D, D] block per head and gate), as in the
    xLSTM reference; recurrent weights R are per head. Output: per-head norm, width d_model.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d, heads = config.d_model, config.num_heads
        self.num_heads, self.head_dim, self.backend = heads, d // heads, config.backend
        dh = self.head_dim
        self.conv = CausalConv1d(d, config.conv_kernel)
        self.w_if = nn.Parameter(torch.empty(heads, 2, dh, dh))  # acts on the convolved input
        self.w_zo = nn.Parameter(torch.empty(heads, 2, dh, dh))  # acts on the input itself
        # Zero recurrent weights at init (xLSTM "zeros" init): the cell starts as a gated running mean.
        self.R = nn.Parameter(torch.zeros(heads, 4, dh, dh))
        self.bias = nn.Parameter(torch.zeros(heads, 4, dh))
        self.norm = MultiHeadNorm(heads, dh, config.norm_eps)
        nn.init.normal_(self.w_if, std=(2 / (5 * dh)) ** 0.5)
        nn.init.normal_(self.w_zo, std=(2 / (5 * dh)) ** 0.5)
        with torch.no_grad():
            # Forget gates open (sigmoid(3..6) ~ 0.95..0.998), a spread of time scales over channels.
            self.bias[:, 1] = torch.linspace(3.0, 6.0, heads * dh).view(heads, dh)

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> SLSTMBlockState:
        shape = (batch_size, self.num_heads, self.head_dim)
        zeros = [torch.zeros(shape, device=device, dtype=compute_dtype(dtype)) for _ in range(4)]
        return SLSTMBlockState(self.conv.init_state(batch_size, device, dtype), SLSTMState(*zeros))

    def forward(
        self,
        x: torch.Tensor,
        state: SLSTMBlockState | None = None,
        cu_seqlens: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, SLSTMBlockState | None]:
        """Args: x [B, S, d]; state or None; cu_seqlens [N + 1] or None (packed documents, B = 1);
        position_ids: unused (the recurrence orders positions).

        Returns [B, S, d] and the new state (None with `cu_seqlens`)."""
        if cu_seqlens is not None and state is not None:
            raise ValueError("SLSTMLayer: pass either state or cu_seqlens, not both")
        x_conv, conv_state = self.conv(x, None if state is None else state.conv, cu_seqlens)
        split = (self.num_heads, self.head_dim)
        x_conv, x_heads = F.silu(x_conv).unflatten(-1, split), x.unflatten(-1, split)
        gates_x = torch.cat(
            [
                torch.einsum("bshd,hgde->bshge", x_conv, self.w_if),
                torch.einsum("bshd,hgde->bshge", x_heads, self.w_zo),
            ],
            dim=3,
        )  # [B, S, H, 4, D], gates (i, f, z, o)
        cell = None if state is None else state.cell
        if cu_seqlens is not None:
            h = slstm(gates_x, self.R, bias=self.bias, cu_seqlens=cu_seqlens, backend=self.backend)
            return self.norm(h), None
        if x.shape[1] == 1 and cell is not None:
            h, cell = slstm_step(gates_x[:, 0], self.R, cell, bias=self.bias)
            h = h.unsqueeze(1)
        else:
            h, cell = slstm(
                gates_x, self.R, bias=self.bias, state=cell, backend=self.backend, return_state=True
            )
        return self.norm(h), SLSTMBlockState(conv_state, cell)


class SLSTMBlock(ResidualBlock):
    """sLSTM block with post-up-projection: `x + sLSTM(LN(x))`, then a gated feed-forward."""

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__(config)
        self.mixer = SLSTMLayer(config)
