"""The mLSTM block (`m`, xLSTM paper): its layer and state, and the mLSTM call that `m` and `x` share."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from biolm.kernels.mlstm import MLSTMState, mlstm, mlstm_step
from biolm.kernels.varlen import segment_positions
from biolm.models.bidirectional import run_mixer
from biolm.models.common import CausalConv1d, MultiHeadNorm, rotate_pairs
from biolm.models.config import ModelConfig


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


class BlockDiagonalLinear(nn.Module):
    """Linear map whose weight is block-diagonal with square blocks (a bias only if asked for).

    The xLSTM mLSTM layer projects q, k and v this way: it mixes only channels within a small block,
    which costs `dim * block_size` parameters instead of `dim**2`.
    """

    def __init__(self, dim: int, block_size: int, bias: bool = False) -> None:
        super().__init__()
        if dim % block_size:
            raise ValueError(f"dim {dim} is not a multiple of block_size {block_size}")
        self.block_size = block_size
        self.weight = nn.Parameter(torch.empty(dim // block_size, block_size, block_size))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None
        nn.init.normal_(self.weight, std=(2 / (5 * block_size)) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = x.unflatten(-1, (self.weight.shape[0], self.block_size))
        out = torch.einsum("...ni,noi->...no", blocks, self.weight).flatten(-2)
        return out if self.bias is None else out + self.bias


class MLSTMBlockState(NamedTuple):
    """Recurrent state of one mLSTM block: the convolution's input tail and the mLSTM memory (and, with
    RoPE, the position of the next token)."""

    conv: torch.Tensor  # [B, K-1, inner]
    cell: MLSTMState  # C [B, H, Dh, Dh], n [B, H, Dh], m [B, H]
    position: torch.Tensor | None = None  # [B] int64, with config.rope only


class MLSTMLayer(nn.Module):
    """mLSTM layer with pre-up-projection (xLSTM paper, Fig. 10).

    x -> up-projection to (x_m, z); q and k from the causally convolved x_m, v from x_m; exponential
    input and forget gates from (q, k, v); per-head norm of the mLSTM output plus a learned skip of the
    convolved input; output gate silu(z); down-projection back to d_model.
    """

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__()
        d, inner, heads = config.d_model, config.inner_dim, config.num_heads
        self.num_heads = heads
        self.head_dim = inner // heads
        self.chunk_size = config.chunk_size
        self.backend = config.backend
        self.rope, self.rope_base = config.rope, config.rope_base

        bias = config.projection_bias
        self.proj_up = nn.Linear(d, 2 * inner, bias=bias)
        self.conv = CausalConv1d(inner, config.conv_kernel)
        self.q_proj = BlockDiagonalLinear(inner, config.qkv_block_size, bias)
        self.k_proj = BlockDiagonalLinear(inner, config.qkv_block_size, bias)
        self.v_proj = BlockDiagonalLinear(inner, config.qkv_block_size, bias)
        self.igate = nn.Linear(3 * inner, heads)
        self.fgate = nn.Linear(3 * inner, heads)
        self.norm = MultiHeadNorm(heads, self.head_dim, config.norm_eps)
        self.skip = nn.Parameter(torch.ones(inner))
        self.proj_down = nn.Linear(inner, d, bias=bias)
        self._init_weights(config, layer_index)

    def _init_weights(self, config: ModelConfig, layer_index: int) -> None:
        d = config.d_model
        nn.init.normal_(self.proj_up.weight, std=(2 / (5 * d)) ** 0.5)
        # Scaled so that the residual stream's variance does not grow with depth (Wang init).
        nn.init.normal_(self.proj_down.weight, std=2 / config.n_layers / math.sqrt(d))
        for linear in (self.proj_up, self.proj_down):
            if linear.bias is not None:  # projection_bias: start at zero, as the reference does
                nn.init.zeros_(linear.bias)
        # Gates start from their biases alone: forget gates open (sigmoid(3..6) ~ 0.95..0.998), with a
        # spread of time scales over heads; input gates near exp(0).
        nn.init.zeros_(self.igate.weight)
        nn.init.normal_(self.igate.bias, std=0.1)
        nn.init.zeros_(self.fgate.weight)
        with torch.no_grad():
            self.fgate.bias.copy_(torch.linspace(3.0, 6.0, self.num_heads))

    def _gates(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Input and forget gates [B, S, H] from q, k, v [B, S, inner]: `igate` and `fgate` of [q, k, v].

        Computed as one small matmul per input rather than on their concatenation: that would be a
        [B, S, 3 * inner] copy, and its gradient two thin matmuls writing that size plus their sum.
        """
        weight = torch.cat([self.igate.weight, self.fgate.weight])  # [2H, 3 * inner]
        w_q, w_k, w_v = weight.chunk(3, dim=1)
        bias = torch.cat([self.igate.bias, self.fgate.bias])
        gates = F.linear(q, w_q, bias) + F.linear(k, w_k) + F.linear(v, w_v)
        return gates.chunk(2, dim=-1)

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> MLSTMBlockState:
        heads, dh = self.num_heads, self.head_dim
        cell = MLSTMState(
            C=torch.zeros(batch_size, heads, dh, dh, device=device),
            n=torch.zeros(batch_size, heads, dh, device=device),
            m=torch.zeros(batch_size, heads, device=device),
        )
        position = torch.zeros(batch_size, dtype=torch.long, device=device) if self.rope != "none" else None
        return MLSTMBlockState(self.conv.init_state(batch_size, device, dtype), cell, position)

    def forward(
        self,
        x: torch.Tensor,
        state: MLSTMBlockState | None = None,
        cu_seqlens: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, MLSTMBlockState | None]:
        """Mix positions with the causal convolution and the mLSTM.

        Args:
            x: [B, S, d].
            state: from a previous call, or None to start fresh.
            cu_seqlens: optional [N + 1] offsets of documents packed into one row (B = 1); each document
                starts from a fresh state. Not allowed together with `state`.
            position_ids: [B, S] or None; used with `config.rope` only (the recurrence itself orders
                positions): None means 0, 1, 2, ... from the state's position (from each document's
                start with `cu_seqlens`).

        Returns:
            [B, S, d] and the new state (None with `cu_seqlens`).
        """
        if cu_seqlens is not None and state is not None:
            raise ValueError("MLSTMLayer: pass either state or cu_seqlens, not both")
        B, S, _ = x.shape
        x_m, z = self.proj_up(x).chunk(2, dim=-1)
        x_conv, conv_state = self.conv(x_m, None if state is None else state.conv, cu_seqlens)
        x_conv = F.silu(x_conv)
        q, k, v = self.q_proj(x_conv), self.k_proj(x_conv), self.v_proj(x_m)
        next_position = None
        split = (self.num_heads, self.head_dim)
        if self.rope == "none":
            i, f = self._gates(q, k, v)  # [B, S, H]
        else:
            positions = self._positions(position_ids, state, cu_seqlens, B, S, x.device)
            next_position = positions.expand(B, S)[:, -1] + 1
            if self.rope == "inner":  # Prot-xLSTM's rot_1d: the gates read the rotated q and k
                q, k = rotate_pairs(q, positions, self.rope_base), rotate_pairs(k, positions, self.rope_base)
                i, f = self._gates(q, k, v)
            else:  # "head", DNA-xLSTM's: the gates read the unrotated q, k, v; each head is rotated
                i, f = self._gates(q, k, v)
                per_head = positions[..., None]  # broadcast over heads
                q = rotate_pairs(q.unflatten(-1, split), per_head, self.rope_base).flatten(-2)
                k = rotate_pairs(k.unflatten(-1, split), per_head, self.rope_base).flatten(-2)
        q, k, v = q.unflatten(-1, split), k.unflatten(-1, split), v.unflatten(-1, split)
        cell = None if state is None else state.cell
        h, cell = run_mlstm(q, k, v, i, f, cell, cu_seqlens, self.chunk_size, self.backend)
        out = (self.norm(h) + self.skip * x_conv) * F.silu(z)
        new_state = None if cu_seqlens is not None else MLSTMBlockState(conv_state, cell, next_position)
        return self.proj_down(out), new_state

    @staticmethod
    def _positions(
        position_ids: torch.Tensor | None,
        state: MLSTMBlockState | None,
        cu_seqlens: torch.Tensor | None,
        batch: int,
        seq: int,
        device: torch.device,
    ) -> torch.Tensor:
        """[B, S] (or [S]) RoPE positions: the given ones, else counting on from the state."""
        if position_ids is not None:
            return position_ids
        if cu_seqlens is not None:
            return segment_positions(cu_seqlens, batch, seq)[1]
        start = torch.zeros(batch, dtype=torch.long, device=device)
        if state is not None and state.position is not None:
            start = state.position
        return start[:, None] + torch.arange(seq, device=device)


class MLSTMBlock(nn.Module):
    """Pre-norm residual block around an `MLSTMLayer`."""

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=False)
        self.layer = MLSTMLayer(config, layer_index)
        self.dropout = nn.Dropout(config.dropout)
        self.bidirectional = config.bidirectional

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> MLSTMBlockState:
        return self.layer.init_state(batch_size, device, dtype)

    def forward(
        self,
        x: torch.Tensor,
        state: MLSTMBlockState | None = None,
        cu_seqlens: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, MLSTMBlockState | None]:
        """Args: x [B, S, d]; state or None; cu_seqlens [N + 1] or None; position_ids [B, S] or None
        (see `MLSTMLayer.forward`). With `config.bidirectional` the layer also runs over the flipped
        sequence (`biolm.models.bidirectional`) and the state is None."""
        y, state = run_mixer(self.layer, self.norm(x), state, cu_seqlens, position_ids, self.bidirectional)
        return x + self.dropout(y), state
