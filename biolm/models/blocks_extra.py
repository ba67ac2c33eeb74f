"""Block types besides mLSTM: sLSTM (`s`), gated linear attention (`a`) and softmax attention (`t`).

Each block is `x + mixer(LN(x))` followed by `x + GatedFeedForward(LN(x))` (post-up-projection, as the
xLSTM paper's sLSTM block), maps [B, S, d] to [B, S, d] and carries a state, so that a sequence fed in
pieces (or token by token) gives exactly the output of one call.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from biolm.kernels.linear_attention import LinearAttentionState, linear_attention, linear_attention_step
from biolm.kernels.slstm import SLSTMState, slstm, slstm_step
from biolm.models.bidirectional import run_mixer
from biolm.models.config import ModelConfig
from biolm.models.fused import swiglu
from biolm.models.layers import CausalConv1d, MultiHeadNorm, segment_positions

ROPE_BASE = 10000.0


def _state_dtype(dtype: torch.dtype) -> torch.dtype:
    # The recurrent kernels keep their state in float32 (float64 for float64 models).
    return torch.float64 if dtype == torch.float64 else torch.float32


def _init_out_proj(linear: nn.Linear, config: ModelConfig) -> None:
    # Scaled so that the residual stream's variance does not grow with depth (Wang init).
    nn.init.normal_(linear.weight, std=2 / config.n_layers / math.sqrt(config.d_model))


class GatedFeedForward(nn.Module):
    """SwiGLU feed-forward: up-projection to (gate, value), silu(gate) * value, down-projection."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d, ffn = config.d_model, config.ffn_dim
        self.proj_up = nn.Linear(d, 2 * ffn, bias=False)
        self.proj_down = nn.Linear(ffn, d, bias=False)
        nn.init.normal_(self.proj_up.weight, std=(2 / (5 * d)) ** 0.5)
        _init_out_proj(self.proj_down, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x [B, S, d]. Returns [B, S, d]."""
        # Row-blocked on the CPU (biolm.models.fused): the elementwise passes otherwise cost as
        # much as the matmuls.
        return swiglu(x, self.proj_up.weight, self.proj_down.weight)


class _ResidualBlock(nn.Module):
    """`x + mixer(LN(x))` then `x + ffn(LN(x))`; subclasses set `self.mixer`."""

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
        zeros = [torch.zeros(shape, device=device, dtype=_state_dtype(dtype)) for _ in range(4)]
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


class SLSTMBlock(_ResidualBlock):
    """sLSTM block with post-up-projection: `x + sLSTM(LN(x))`, then a gated feed-forward."""

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__(config)
        self.mixer = SLSTMLayer(config)


class GatedLinearAttention(nn.Module):
    """Linear attention with a per-head, data-dependent scalar decay and a silu output gate."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d, heads = config.d_model, config.num_heads
        self.num_heads, self.head_dim = heads, d // heads
        self.chunk_size, self.backend = config.chunk_size, config.backend
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.decay = nn.Linear(d, heads)
        self.gate = nn.Linear(d, d, bias=False)
        self.norm = MultiHeadNorm(heads, self.head_dim, config.norm_eps)
        self.out = nn.Linear(d, d, bias=False)
        nn.init.normal_(self.qkv.weight, std=(2 / (5 * d)) ** 0.5)
        nn.init.normal_(self.gate.weight, std=(2 / (5 * d)) ** 0.5)
        _init_out_proj(self.out, config)
        # Decays start from their biases alone, like the mLSTM forget gate: sigmoid(3..6) ~ 0.95..0.998.
        nn.init.zeros_(self.decay.weight)
        with torch.no_grad():
            self.decay.bias.copy_(torch.linspace(3.0, 6.0, heads))

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> LinearAttentionState:
        heads, dh, dt = self.num_heads, self.head_dim, _state_dtype(dtype)
        return LinearAttentionState(
            torch.zeros(batch_size, heads, dh, dh, device=device, dtype=dt),
            torch.zeros(batch_size, heads, dh, device=device, dtype=dt),
        )

    def forward(
        self,
        x: torch.Tensor,
        state: LinearAttentionState | None = None,
        cu_seqlens: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, LinearAttentionState | None]:
        """Args: x [B, S, d]; state or None; cu_seqlens [N + 1] or None (packed documents, B = 1);
        position_ids: unused (the decay orders positions).

        Returns [B, S, d] and the new state (None with `cu_seqlens`)."""
        if cu_seqlens is not None and state is not None:
            raise ValueError("GatedLinearAttention: pass either state or cu_seqlens, not both")
        q, k, v = (t.unflatten(-1, (self.num_heads, self.head_dim)) for t in self.qkv(x).chunk(3, dim=-1))
        log_decay = F.logsigmoid(self.decay(x))  # [B, S, H]
        if cu_seqlens is not None:
            h = linear_attention(
                q,
                k,
                v,
                log_decay=log_decay,
                normalize=True,
                chunk_size=self.chunk_size,
                cu_seqlens=cu_seqlens,
                backend=self.backend,
            )
        elif x.shape[1] == 1 and state is not None:
            h, state = linear_attention_step(
                q[:, 0], k[:, 0], v[:, 0], log_decay=log_decay[:, 0], state=state, normalize=True
            )
            h = h.unsqueeze(1)
        else:
            h, state = linear_attention(
                q,
                k,
                v,
                log_decay=log_decay,
                state=state,
                normalize=True,
                chunk_size=self.chunk_size,
                backend=self.backend,
                return_state=True,
            )
        return self.out(self.norm(h) * F.silu(self.gate(x))), state


class LinearAttentionBlock(_ResidualBlock):
    """`x + GatedLinearAttention(LN(x))`, then a gated feed-forward."""

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__(config)
        self.mixer = GatedLinearAttention(config)


class KVCache(NamedTuple):
    """Keys and values of every position seen so far; grows by one entry per token."""

    k: torch.Tensor  # [B, H, T, D], RoPE already applied
    v: torch.Tensor  # [B, H, T, D]


def apply_rope(x: torch.Tensor, offset: int, positions: torch.Tensor | None = None) -> torch.Tensor:
    """Rotary position embedding.

    Args:
        x: [B, H, S, D] at positions offset..offset+S-1.
        offset: position of the first entry.
        positions: optional explicit positions, [S] or per row [B, S] (e.g. restarting per packed
            document or per member of an in-context family); replaces offset.

    Returns:
        [B, H, S, D].
    """
    half = x.shape[-1] // 2
    inv_freq = ROPE_BASE ** (-torch.arange(half, device=x.device, dtype=torch.float64) / half)
    if positions is not None:
        pos = positions.to(device=x.device, dtype=torch.float64)
    else:
        pos = torch.arange(offset, offset + x.shape[-2], device=x.device, dtype=torch.float64)
    angle = pos[..., None] * inv_freq  # [S, D/2] or [B, S, D/2]; float64 so long positions stay exact
    if angle.dim() == 3:
        angle = angle[:, None]  # broadcast over heads
    dt = _state_dtype(x.dtype)
    cos, sin = angle.cos().to(dt), angle.sin().to(dt)
    x1, x2 = x.to(dt).chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)


class CausalSelfAttention(nn.Module):
    """Multi-head causal softmax attention with RoPE and a KV cache as its state."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d, heads = config.d_model, config.num_heads
        self.num_heads, self.head_dim = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        nn.init.normal_(self.qkv.weight, std=(2 / (5 * d)) ** 0.5)
        _init_out_proj(self.out, config)

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> KVCache:
        empty = torch.zeros(batch_size, self.num_heads, 0, self.head_dim, device=device, dtype=dtype)
        return KVCache(empty, empty.clone())

    def forward(
        self,
        x: torch.Tensor,
        state: KVCache | None = None,
        cu_seqlens: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """Args: x [B, S, d]; state or None; cu_seqlens [N + 1] or None (packed documents, B = 1);
        position_ids [B, S] int or None: the RoPE position of each token, e.g. restarting for each member
        of a packed family while attention still spans all members. None numbers tokens from the cache
        length (or from each document's start with `cu_seqlens`). Cached keys keep the positions they
        were rotated with, so state passing works with explicit positions too.

        Returns [B, S, d] and the cache extended by S positions (None with `cu_seqlens`)."""
        if cu_seqlens is not None and state is not None:
            raise ValueError("CausalSelfAttention: pass either state or cu_seqlens, not both")
        B, S, _ = x.shape
        q, k, v = (
            t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)
            for t in self.qkv(x).chunk(3, dim=-1)
        )  # each [B, H, S, D]
        if cu_seqlens is not None:
            doc, pos = segment_positions(cu_seqlens, B, S)
            doc, pos = doc.to(x.device), pos.to(x.device)
            if position_ids is not None:
                pos = position_ids
            q, k = apply_rope(q, 0, pos), apply_rope(k, 0, pos)
            # Block-diagonal causal: a query sees earlier keys of its own document only.
            same_doc = doc[None, :] == doc[:, None]
            mask = same_doc & (
                torch.arange(S, device=x.device)[None, :] <= torch.arange(S, device=x.device)[:, None]
            )
            h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            return self.out(h.transpose(1, 2).flatten(-2)), None
        offset = 0 if state is None else state.k.shape[2]
        q, k = apply_rope(q, offset, position_ids), apply_rope(k, offset, position_ids)
        if state is not None:
            k = torch.cat([state.k.to(k.dtype), k], dim=2)
            v = torch.cat([state.v.to(v.dtype), v], dim=2)
        # Query i sits at position offset + i and may see every cached key plus new keys up to itself.
        key_pos = torch.arange(offset + S, device=x.device)
        mask = key_pos[None, :] <= (offset + torch.arange(S, device=x.device))[:, None]
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(h.transpose(1, 2).flatten(-2)), KVCache(k, v)


class AttentionBlock(_ResidualBlock):
    """Transformer block: `x + CausalSelfAttention(LN(x))`, then a gated feed-forward."""

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__(config)
        self.mixer = CausalSelfAttention(config)
