"""The xLSTM-7B block (`x`): the design of the xlstm package's `xLSTMLarge`, on biolm's kernels.

    x = x + out_proj(sigmoid(o) * MultiHeadNorm(mLSTM(q, k, v, i, f)))    (on RMSNorm(x))
    x = x + SwiGLU(RMSNorm(x))

All of q [d -> qk_dim], k [d -> qk_dim], v [d -> v_dim], the output gate o [d -> v_dim] and the input and
forget gates i, f [d -> H] (with bias, soft-capped by `cap * tanh(x / cap)`) are linear maps of the
normed input itself: unlike the xLSTM-paper `m` block there is no up-projection, no convolution and no
learned skip; the layer works at width d_model with small q/k heads (qk_dim_factor 0.5) and a separate
SwiGLU feed-forward (`ffn_factor`, 8/3 in xLSTM-7B) follows it.

Same structure and parameter count as `xLSTMLarge`'s `mLSTMBlock` with `use_bias=False`,
`weight_mode="single"`. Deviations, all deliberate:

- Initialisation follows biolm's other blocks (small normal in-projections, depth-scaled output
  projections, gate weights zero with forget-gate biases 3..6), not torch's default that xLSTMLarge keeps.
- The six input projections are separate parameters (xLSTMLarge's "single" layout) but run as one
  matmul on their concatenated weights: one pass over the activations instead of six.
- The SwiGLU's gate and value projections are one fused weight (`GatedFeedForward`), as in biolm's
  other blocks; xLSTMLarge keeps two (same parameter count).
- Model level, not this block: xLSTMLarge ends in an RMSNorm and soft-caps the logits at 30; biolm's
  backbone does so with `final_norm="rms"` and `logit_soft_cap=30` (a converted xLSTM-7B has both),
  and by default uses a LayerNorm without bias (same parameter count), no cap, and ties the
  embedding to the head unless `tie_embeddings=False`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from biolm.kernels.common import compute_dtype
from biolm.kernels.mlstm import MLSTMState
from biolm.models.common import MultiHeadNorm, ResidualBlock, RMSNorm, init_out_proj
from biolm.models.config import ModelConfig
from biolm.models.mlstm import run_mlstm


def soft_cap(x: torch.Tensor, cap: float) -> torch.Tensor:
    """`cap * tanh(x / cap)`: bounded to (-cap, cap), nearly the identity for |x| << cap; cap 0: x."""
    return x if cap == 0 else cap * torch.tanh(x / cap)


class XLSTM7BLayer(nn.Module):
    """mLSTM layer of the xLSTM-7B block: q/k/v, gates and output gate from x, per-head norm, out-proj.

    Head dims: Dk = qk_dim / H, Dv = v_dim / H (32 and 64 at d_model 256, 4 heads).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d, heads = config.d_model, config.num_heads
        self.num_heads, self.qk_dim, self.v_dim = heads, config.qk_dim, config.v_dim
        self.chunk_size, self.backend = config.chunk_size, config.backend
        self.gate_soft_cap = config.gate_soft_cap
        self.q = nn.Linear(d, self.qk_dim, bias=False)
        self.k = nn.Linear(d, self.qk_dim, bias=False)
        self.v = nn.Linear(d, self.v_dim, bias=False)
        self.ogate = nn.Linear(d, self.v_dim, bias=False)
        self.igate = nn.Linear(d, heads)
        self.fgate = nn.Linear(d, heads)
        self.norm = MultiHeadNorm(heads, self.v_dim // heads, config.norm_eps)
        self.out_proj = nn.Linear(self.v_dim, d, bias=False)
        for linear in (self.q, self.k, self.v, self.ogate):
            nn.init.normal_(linear.weight, std=(2 / (5 * d)) ** 0.5)
        init_out_proj(self.out_proj, config)
        # Gates start from their biases alone, as in biolm's m block: forget gates open
        # (sigmoid(3..6) ~ 0.95..0.998) with a spread of time scales over heads, input gates near exp(0).
        nn.init.zeros_(self.igate.weight)
        nn.init.normal_(self.igate.bias, std=0.1)
        nn.init.zeros_(self.fgate.weight)
        with torch.no_grad():
            self.fgate.bias.copy_(torch.linspace(3.0, 6.0, heads))

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> MLSTMState:
        heads, dk, dv = self.num_heads, self.qk_dim // self.num_heads, self.v_dim // self.num_heads
        dt = compute_dtype(dtype)
        return MLSTMState(
            C=torch.zeros(batch_size, heads, dk, dv, device=device, dtype=dt),
            n=torch.zeros(batch_size, heads, dk, device=device, dtype=dt),
            m=torch.zeros(batch_size, heads, device=device, dtype=dt),
        )

    def _projections(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """q, k [B, S, H, Dk], v [B, S, H, Dv], o [B, S, v_dim], i, f [B, S, H] (capped) from x [B, S, d]."""
        linears = (self.q, self.k, self.v, self.ogate, self.igate, self.fgate)
        weight = torch.cat([lin.weight for lin in linears])
        # The gate biases are added after the split: the projections of q, k, v and o have none.
        q, k, v, o, i, f = F.linear(x, weight).split([lin.out_features for lin in linears], dim=-1)
        i = soft_cap(i + self.igate.bias, self.gate_soft_cap)
        f = soft_cap(f + self.fgate.bias, self.gate_soft_cap)
        heads = (self.num_heads, -1)
        return q.unflatten(-1, heads), k.unflatten(-1, heads), v.unflatten(-1, heads), o, i, f

    def forward(
        self,
        x: torch.Tensor,
        state: MLSTMState | None = None,
        cu_seqlens: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, MLSTMState | None]:
        """Mix positions with the mLSTM.

        Args:
            x: [B, S, d].
            state: from a previous call, or None to start fresh.
            cu_seqlens: optional [N + 1] offsets of documents packed into one row (B = 1); each document
                starts from a fresh state. Not allowed together with `state`.
            position_ids: [B, S] or None; unused, the recurrence itself orders positions.

        Returns:
            [B, S, d] and the new state (None with `cu_seqlens`).
        """
        if cu_seqlens is not None and state is not None:
            raise ValueError("XLSTM7BLayer: pass either state or cu_seqlens, not both")
        q, k, v, o, i, f = self._projections(x)
        h, state = run_mlstm(q, k, v, i, f, state, cu_seqlens, self.chunk_size, self.backend)
        y = self.out_proj(torch.sigmoid(o) * self.norm(h))
        return y, state


class XLSTM7BBlock(ResidualBlock):
    """`x + XLSTM7BLayer(RMSNorm(x))`, then `x + SwiGLU(RMSNorm(x))` (see the module docstring)."""

    def __init__(self, config: ModelConfig, layer_index: int) -> None:
        super().__init__(config)
        # xLSTM-7B pre-norms are RMSNorms (weight only), where biolm's other blocks use LayerNorm.
        self.norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.ffn_norm = RMSNorm(config.d_model, eps=config.norm_eps)
        self.mixer = XLSTM7BLayer(config)
