"""The gated linear-attention block (`a`): linear attention with a data-dependent decay, then a
gated feed-forward (a :class:`~biolm.models.common.ResidualBlock`, as the `s` block)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from biolm.kernels.common import compute_dtype
from biolm.kernels.linear_attention import LinearAttentionState, linear_attention, linear_attention_step
from biolm.models.common import MultiHeadNorm, ResidualBlock, init_out_proj
from biolm.models.config import ModelConfig


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
        init_out_proj(self.out, config)
        # Decays start from their biases alone, like the mLSTM forget gate: sigmoid(3..6) ~ 0.95..0.998.
        nn.init.zeros_(self.decay.weight)
        with torch.no_grad():
            self.decay.bias.copy_(torch.linspace(3.0, 6.0, heads))

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> LinearAttentionState:
        heads, dh, dt = self.num_heads, self.head_dim, compute_dtype(dtype)
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


class LinearAttentionBlock(ResidualBlock):
    """`x + GatedLinearAttention(LN(x))`, then a gated feed-forward."""

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__(config)
        self.mixer = GatedLinearAttention(config)
