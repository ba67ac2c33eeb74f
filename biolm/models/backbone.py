"""`BioLM`: embedding, a stack of recurrent blocks, final norm and language-model head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from biolm.kernels.varlen import segment_offsets
from biolm.models.blocks import BLOCK_CLASSES
from biolm.models.config import ModelConfig

ModelState = list[Any]  # one state object per block


@dataclass
class LMOutput:
    """What a forward pass returns.

    Attributes:
        logits: [B, S, vocab_size] next-token logits.
        hidden: [B, S, d_model] final (normalised) hidden states, the embedding of each position.
        state: per-block recurrent state after the last position; pass it to continue the sequence.
            None for packed input (`cu_seqlens`), whose documents are complete.
    """

    logits: torch.Tensor
    hidden: torch.Tensor
    state: ModelState | None


class BioLM(nn.Module):
    """Causal language model over token ids, built from a `ModelConfig`.

    Every block is recurrent, so a long input can be fed in pieces: `forward(ids[:, :n])` then
    `forward(ids[:, n:], state=out.state)` gives the same outputs as one call, with memory bounded by
    the piece length.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(
            BLOCK_CLASSES[letter](config, index) for index, letter in enumerate(config.block_types())
        )
        self.final_norm = nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=False)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        nn.init.normal_(self.embedding.weight, std=(2 / (5 * config.d_model)) ** 0.5)
        if config.tie_embeddings:
            self.lm_head.weight = self.embedding.weight

    def init_state(self, batch_size: int, device: torch.device | str = "cpu") -> ModelState:
        """The state before the first token: zeros for every block."""
        dtype = self.embedding.weight.dtype
        return [block.init_state(batch_size, torch.device(device), dtype) for block in self.blocks]

    def forward(
        self, ids: torch.Tensor, state: ModelState | None = None, cu_seqlens: torch.Tensor | None = None
    ) -> LMOutput:
        """Run the model over a batch of token ids.

        Args:
            ids: [B, S] int64.
            state: from a previous call, or None to start fresh.
            cu_seqlens: optional [N + 1] int cumulative offsets of N documents packed back to back into
                one row (B = 1). Every document runs as if alone: recurrent states reset, convolutions
                and attention never reach across a boundary, RoPE positions restart at 0. Not allowed
                together with `state`; the returned state is then None.

        Returns:
            `LMOutput` with logits [B, S, vocab_size] and hidden [B, S, d_model].

        Raises:
            ValueError: both `state` and `cu_seqlens`, B != 1 or invalid offsets with `cu_seqlens`.
        """
        if cu_seqlens is not None:
            if state is not None:
                raise ValueError("pass either state or cu_seqlens, not both")
            segment_offsets(cu_seqlens, ids.shape[0], ids.shape[1])  # fail before any work
        x = self.embedding(ids)
        new_state = []
        for index, block in enumerate(self.blocks):
            x, block_state = block(x, None if state is None else state[index], cu_seqlens)
            new_state.append(block_state)
        hidden = self.final_norm(x)
        return LMOutput(self.lm_head(hidden), hidden, None if cu_seqlens is not None else new_state)

    @torch.no_grad()
    def step(self, ids: torch.Tensor, state: ModelState) -> tuple[torch.Tensor, ModelState]:
        """Advance by one token per row. Args: ids [B]. Returns logits [B, vocab] and the new state."""
        out = self.forward(ids[:, None], state)
        return out.logits[:, 0], out.state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
