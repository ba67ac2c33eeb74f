"""The softmax-attention block (`t`, a Transformer baseline): causal multi-head attention with RoPE
and a KV cache as its state, then a gated feed-forward (a :class:`~biolm.models.common.ResidualBlock`)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from biolm.kernels.common import compute_dtype
from biolm.kernels.varlen import segment_positions
from biolm.models.common import ResidualBlock, init_out_proj
from biolm.models.config import ModelConfig

ROPE_BASE = 10000.0


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
    dt = compute_dtype(x.dtype)
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
        init_out_proj(self.out, config)

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


class AttentionBlock(ResidualBlock):
    """Transformer block: `x + CausalSelfAttention(LN(x))`, then a gated feed-forward."""

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__(config)
        self.mixer = CausalSelfAttention(config)
