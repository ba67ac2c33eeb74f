"""`BioLM`: embedding, a stack of recurrent blocks, final norm and language-model head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

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
    """

    logits: torch.Tensor
    hidden: torch.Tensor
    state: ModelState


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

    def forward(self, ids: torch.Tensor, state: ModelState | None = None) -> LMOutput:
        """Args: ids [B, S] int64; state from a previous call (or None to start fresh)."""
        x = self.embedding(ids)
        new_state = []
        for index, block in enumerate(self.blocks):
            x, block_state = block(x, None if state is None else state[index])
            new_state.append(block_state)
        hidden = self.final_norm(x)
        return LMOutput(self.lm_head(hidden), hidden, new_state)

    @torch.no_grad()
    def step(self, ids: torch.Tensor, state: ModelState) -> tuple[torch.Tensor, ModelState]:
        """Advance by one token per row. Args: ids [B]. Returns logits [B, vocab] and the new state."""
        out = self.forward(ids[:, None], state)
        return out.logits[:, 0], out.state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
