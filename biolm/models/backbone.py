"""`BioLM`: embedding, a stack of recurrent blocks, final norm and language-model head."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from biolm.kernels.varlen import segment_offsets
from biolm.models.bidirectional import bidirectional_mix, flip_sequence
from biolm.models.common import RMSNorm
from biolm.models.config import ModelConfig
from biolm.models.rc import rc_equivariant_forward
from biolm.models.registry import BLOCK_CLASSES

ModelState = list[Any]  # one state object per block


@dataclass
class LMOutput:
    """What a forward pass returns.

    Attributes:
        logits: [B, S, vocab_size]: next-token logits for a causal model; for a bidirectional or
            RC-equivariant one (trained masked), logits of the token at each position.
        hidden: [B, S, d_model] final (normalised) hidden states, the embedding of each position. For an
            RC-equivariant model: the forward strand's half, then the reverse-complement strand's.
        state: per-block recurrent state after the last position; pass it to continue the sequence.
            None for packed input (`cu_seqlens`), whose documents are complete, and for bidirectional
            or RC-equivariant models, which cannot continue a sequence.
        hidden_states: only with `forward(..., output_hidden_states=True)`, else None: n_layers + 1
            tensors [B, S, d_model], numbered as ESM numbers its layers: 0 is the token embedding, i the
            residual stream after block i (not normalised), and the last one is `hidden` (after the
            final norm). For an RC-equivariant model each is laid out as `hidden` is (forward strand's
            half, then the reverse-complement strand's, aligned with the forward strand).
    """

    logits: torch.Tensor
    hidden: torch.Tensor
    state: ModelState | None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class BioLM(nn.Module):
    """Language model over token ids, built from a `ModelConfig`.

    Causal by default. Every block is recurrent, so a long input can be fed in pieces:
    `forward(ids[:, :n])` then `forward(ids[:, n:], state=out.state)` gives the same outputs as one
    call, with memory bounded by the piece length.

    With `config.bidirectional` each block also runs over the flipped sequence
    (`biolm.models.bidirectional`); with `config.rc_equivariant` the two halves of the residual stream
    carry the sequence and its reverse complement through shared weights (`biolm.models.rc`). Both read
    the sequence from its end, so such models have no state to continue a sequence: `state`,
    `init_state` and `step` raise.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # Blocks, embedding, norm and head work at half width in RC mode, one half per strand.
        block_config = config.block_config()
        # Whole blocks run over both directions here (`_run_blocks`), so each block itself is causal.
        self.block_level = config.bidirectional and config.bidirectional_scope == "block"
        if self.block_level:
            block_config = dataclasses.replace(block_config, bidirectional=False)
        width = block_config.d_model
        self.embedding = nn.Embedding(config.vocab_size, width)
        self.blocks = nn.ModuleList(
            BLOCK_CLASSES[letter](block_config, index) for index, letter in enumerate(config.block_types())
        )
        if config.final_norm == "rms":
            self.final_norm = RMSNorm(width, eps=config.norm_eps)
        else:
            self.final_norm = nn.LayerNorm(width, eps=config.norm_eps, bias=False)
        self.lm_head = nn.Linear(width, config.vocab_size, bias=False)
        nn.init.normal_(self.embedding.weight, std=(2 / (5 * width)) ** 0.5)
        if config.tie_embeddings:
            self.lm_head.weight = self.embedding.weight
        if config.rc_equivariant:
            # Not persistent: it is part of the config, and the weight files stay the same layout.
            self.register_buffer("complement", torch.tensor(config.complement), persistent=False)
        unused = torch.zeros(config.vocab_size, dtype=torch.bool)
        unused[config.unused_ids or []] = True
        # Not persistent either (the config has it); None keeps the common case free of a masked_fill.
        self.register_buffer("unused_ids", unused if config.unused_ids else None, persistent=False)

    def init_state(self, batch_size: int, device: torch.device | str = "cpu") -> ModelState:
        """The state before the first token: zeros for every block."""
        self._require_causal("init_state")
        dtype = self.embedding.weight.dtype
        return [block.init_state(batch_size, torch.device(device), dtype) for block in self.blocks]

    def forward(
        self,
        ids: torch.Tensor,
        state: ModelState | None = None,
        cu_seqlens: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> LMOutput:
        """Run the model over a batch of token ids.

        Args:
            ids: [B, S] int64.
            state: from a previous call, or None to start fresh (causal models only).
            cu_seqlens: optional [N + 1] int cumulative offsets of N documents packed back to back into
                one row (B = 1). Every document runs as if alone: recurrent states reset, convolutions
                and attention never reach across a boundary, RoPE positions restart at 0. Not allowed
                together with `state`; the returned state is then None.
            position_ids: optional [B, S] int RoPE positions, e.g. restarting at 0 for each member of an
                in-context family packed into one row. Unlike `cu_seqlens`, information still flows
                across members; only the attention (`t`) blocks use positions. None means 0, 1, 2, ...
                (continuing from the state, or restarting per document with `cu_seqlens`).
            output_hidden_states: also return every layer's hidden states (`LMOutput.hidden_states`),
                e.g. to embed with an intermediate layer. Off by default: it keeps n_layers + 1 tensors.

        Returns:
            `LMOutput` with logits [B, S, vocab_size] and hidden [B, S, d_model]; state None for packed
            input and for bidirectional or RC-equivariant models; hidden_states as requested.

        Raises:
            ValueError: both `state` and `cu_seqlens`, B != 1 or invalid offsets with `cu_seqlens`,
                `position_ids` not of the shape of `ids`, or a state for a bidirectional/RC model.
        """
        if state is not None:
            self._require_causal("a state")
        if cu_seqlens is not None:
            if state is not None:
                raise ValueError("pass either state or cu_seqlens, not both")
            segment_offsets(cu_seqlens, ids.shape[0], ids.shape[1])  # fail before any work
        if position_ids is not None and (
            position_ids.shape != ids.shape or position_ids.is_floating_point() or position_ids.is_complex()
        ):
            raise ValueError(
                f"position_ids must be integers of the shape of ids {tuple(ids.shape)}, "
                f"got {position_ids.dtype} {tuple(position_ids.shape)}"
            )
        layers: list[torch.Tensor] | None = [] if output_hidden_states else None
        if self.config.rc_equivariant:
            trunk = self._trunk if layers is None else lambda *a: self._trunk(*a, layers=layers)
            logits, hidden = rc_equivariant_forward(
                trunk, self.lm_head, ids, self.complement, cu_seqlens, position_ids
            )
            if layers is not None:
                layers = [_join_strands(x, ids.shape[1], cu_seqlens) for x in layers[:-1]] + [hidden]
            return LMOutput(self._output(logits), hidden, None, None if layers is None else tuple(layers))
        x, new_state = self._run_blocks(self.embedding(ids), state, cu_seqlens, position_ids, layers)
        hidden = self.final_norm(x)
        keep_state = cu_seqlens is None and not self.config.stateless
        if layers is not None:
            layers[-1] = hidden
        return LMOutput(
            self._output(self.lm_head(hidden)),
            hidden,
            new_state if keep_state else None,
            None if layers is None else tuple(layers),
        )

    def _output(self, logits: torch.Tensor) -> torch.Tensor:
        """The head's logits, soft-capped (`ModelConfig.logit_soft_cap`) and -inf at the ids the model
        never predicts (`ModelConfig.unused_ids`)."""
        cap = self.config.logit_soft_cap
        if cap:
            logits = cap * torch.tanh(logits / cap)
        if self.unused_ids is None:
            return logits
        return logits.masked_fill(self.unused_ids, float("-inf"))

    def _run_blocks(
        self,
        x: torch.Tensor,
        state: ModelState | None,
        cu_seqlens: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        layers: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, ModelState]:
        """Blocks over x [B, S, width]; appends the input and every block's output to `layers` if given."""
        new_state = []
        if layers is not None:
            layers.append(x)
        for index, block in enumerate(self.blocks):
            if self.block_level:
                x, block_state = bidirectional_mix(block, x, cu_seqlens, position_ids), None
            else:
                x, block_state = block(x, None if state is None else state[index], cu_seqlens, position_ids)
            new_state.append(block_state)
            if layers is not None:
                layers.append(x)
        return x, new_state

    def _trunk(
        self,
        ids: torch.Tensor,
        cu_seqlens: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        layers: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Embedding, blocks and final norm without state: [B, S] ids -> [B, S, width] hidden."""
        x, _ = self._run_blocks(self.embedding(ids), None, cu_seqlens, position_ids, layers)
        return self.final_norm(x)

    def _require_causal(self, what: str) -> None:
        if self.config.stateless:
            mode = "bidirectional" if self.config.bidirectional else "RC-equivariant"
            raise ValueError(
                f"a {mode} model has no recurrent state ({what} was requested): it reads each sequence "
                "from both ends, so pass whole sequences (or packed documents with cu_seqlens)"
            )

    @torch.no_grad()
    def step(
        self, ids: torch.Tensor, state: ModelState, position_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ModelState]:
        """Advance a causal model by one token per row.

        Args:
            ids: [B] int.
            state: from `init_state` or a previous call.
            position_ids: optional [B] RoPE position of each row's token (in-context generation).

        Returns:
            logits [B, vocab] and the new state.
        """
        self._require_causal("step")
        out = self.forward(
            ids[:, None], state, position_ids=None if position_ids is None else position_ids[:, None]
        )
        return out.logits[:, 0], out.state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _join_strands(both: torch.Tensor, length: int, cu_seqlens: torch.Tensor | None) -> torch.Tensor:
    """One layer of an RC-equivariant trunk, laid out as `hidden`: [2B, S, w] (or [1, 2S, w] packed,
    as `rc_equivariant_forward` runs it) -> [B, S, 2w], the RC strand flipped back to forward order."""
    fwd, rc = both.chunk(2) if cu_seqlens is None else (both[:, :length], both[:, length:])
    return torch.cat([fwd, flip_sequence(rc, cu_seqlens)], dim=-1)
