"""Masked language modelling (BERT-style) as a LightningModule.

The task reads the same batches as `CausalLMTask` (`input_ids` [B, S], optional `position_ids`
[B, S]) and ignores their causal `labels`: it picks its own targets from `input_ids`. A share
`mask_prob` of the maskable tokens (never specials such as `<pad>`, `<bos>`, `<eos>`, `<sep>`) is
chosen; of those, 80 % become `<mask>`, 10 % a random token, 10 % stay as they are, and the loss is the
mean cross-entropy over the chosen positions only.

Masks are drawn from a generator seeded per batch: in training from (seed, step, batch index, rank),
in validation from (seed, batch index, rank) alone, so every validation pass scores the same masked
positions and `val_loss` is exact and comparable across evaluations. The model should be bidirectional
(`model.bidirectional=true`); a causal model trains too, seeing only the left context of each mask.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import torch

from biolm.models import ModelConfig
from biolm.tasks.clm import IGNORE_INDEX, CausalLMTask, token_nll
from biolm.tokenizers import MASK_ID
from biolm.tokenizers.base import NUM_SPECIAL

log = logging.getLogger(__name__)

_TRAIN, _VAL = 0, 1  # keys that keep the training and validation mask streams apart


def mask_tokens(
    input_ids: torch.Tensor,
    generator: torch.Generator,
    *,
    random_ids: torch.Tensor,
    mask_prob: float = 0.15,
    mask_token_prob: float = 0.8,
    random_token_prob: float = 0.1,
    exclude_ids: Sequence[int] = (),
    mask_id: int = MASK_ID,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose targets and corrupt the input.

    Args:
        input_ids: [B, S] token ids.
        generator: CPU generator that fixes the draw.
        random_ids: [V'] ids a chosen token may be replaced by (e.g. the four bases for DNA).
        mask_prob: share of maskable tokens chosen as targets (each independently).
        mask_token_prob: share of targets replaced by `mask_id`.
        random_token_prob: share of targets replaced by a uniform draw from `random_ids`; the rest of
            the targets keep their token.
        exclude_ids: token ids never chosen, besides the specials (e.g. DNA's N, which has no answer).

    Returns:
        (masked input [B, S], labels [B, S]): labels hold the original id at chosen positions and
        IGNORE_INDEX elsewhere.
    """
    shape = input_ids.shape
    draws = torch.rand((3, *shape), generator=generator).to(input_ids.device)
    picks = torch.randint(len(random_ids), shape, generator=generator).to(input_ids.device)
    maskable = input_ids >= NUM_SPECIAL
    for token in exclude_ids:
        maskable &= input_ids != token
    chosen = maskable & (draws[0] < mask_prob)
    to_mask = chosen & (draws[1] < mask_token_prob)
    to_random = chosen & ~to_mask & (draws[2] < random_token_prob / max(1e-12, 1 - mask_token_prob))
    masked = torch.where(to_mask, torch.full_like(input_ids, mask_id), input_ids)
    masked = torch.where(to_random, random_ids.to(input_ids.device)[picks], masked)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return masked, labels


def batch_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded by a tuple of non-negative ints (hashed by numpy's SeedSequence)."""
    seed = int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


class MaskedLMTask(CausalLMTask):
    """Masked-token prediction with `CausalLMTask`'s optimizer, schedule and exact validation loss.

    Args:
        model_config, optim_config, max_steps: as `CausalLMTask`.
        mask_prob: share of maskable tokens chosen as targets.
        random_ids: ids used for random replacement; None means every non-special id.
        exclude_ids: ids never chosen as targets, besides the specials.
        seed: seeds the masks (with the step, batch index and rank).
    """

    def __init__(
        self,
        model_config: dict,
        optim_config: dict,
        max_steps: int,
        mask_prob: float = 0.15,
        random_ids: list[int] | None = None,
        exclude_ids: list[int] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(model_config, optim_config, max_steps)
        self.save_hyperparameters()  # again, so that a checkpoint also records the masking options
        if not 0.0 < mask_prob < 1.0:
            raise ValueError(f"mask_prob must be in (0, 1), got {mask_prob}")
        vocab = self.model.config.vocab_size
        ids = list(range(NUM_SPECIAL, vocab)) if random_ids is None else list(random_ids)
        if not ids or min(ids) < 0 or max(ids) >= vocab:
            raise ValueError(f"random_ids must be non-empty ids below the vocabulary size {vocab}, got {ids}")
        self.register_buffer("random_ids", torch.tensor(ids, dtype=torch.long), persistent=False)
        self.mask_prob, self.exclude_ids, self.seed = mask_prob, tuple(exclude_ids or ()), seed
        if not getattr(self.model.config, "bidirectional", False):
            log.warning("masked LM with a causal model: each masked token is predicted from its left only")

    def _masked_nll(self, batch: dict[str, torch.Tensor], generator: torch.Generator):
        masked, labels = mask_tokens(
            batch["input_ids"],
            generator,
            random_ids=self.random_ids,
            mask_prob=self.mask_prob,
            exclude_ids=self.exclude_ids,
        )
        logits = self(masked, batch.get("position_ids"))
        return token_nll(logits, labels), (labels != IGNORE_INDEX).sum()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        generator = batch_generator(self.seed, _TRAIN, self.global_step, batch_idx, self.global_rank)
        nll, count = self._masked_nll(batch, generator)
        loss = nll / count.clamp(min=1)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        nll, count = self._masked_nll(batch, batch_generator(self.seed, _VAL, batch_idx, self.global_rank))
        self._val_nll += nll.double()
        self._val_count += count.double()

    @classmethod
    def from_configs(cls, model: ModelConfig, optim, max_steps: int, **masking) -> MaskedLMTask:
        """As `CausalLMTask.from_configs`; `masking` takes the keyword arguments of `__init__`."""
        return cls(dataclasses.asdict(model), dataclasses.asdict(optim), max_steps, **masking)
