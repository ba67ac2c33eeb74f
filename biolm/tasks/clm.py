"""Causal language modelling as a LightningModule."""

from __future__ import annotations

import dataclasses
import inspect
import logging

import lightning as L
import torch
import torch.nn.functional as F

from biolm.configs.schema import OptimConfig
from biolm.data.packing import IGNORE_INDEX
from biolm.models import BioLM, ModelConfig
from biolm.tasks.lr_schedule import warmup_cosine

log = logging.getLogger(__name__)


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed next-token negative log-likelihood (nats) over labels that are not IGNORE_INDEX."""
    return F.cross_entropy(
        logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
    )


class CausalLMTask(L.LightningModule):
    """Next-token prediction with AdamW, warm-up and cosine decay.

    Batches are dicts with `input_ids` [B, S] and `labels` [B, S] (IGNORE_INDEX where no loss), and
    optionally `position_ids` [B, S] (positions restarting per packed member), passed to the model.
    Validation accumulates the summed NLL and the number of targets, so `val_loss` is the exact mean
    per token over the whole validation set (not a mean of batch means), across all devices.
    """

    def __init__(self, model_config: dict, optim_config: dict, max_steps: int) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = BioLM(ModelConfig(**model_config))
        self.optim = OptimConfig(**optim_config)
        self.max_steps = max_steps
        self._val_nll = torch.zeros((), dtype=torch.float64)
        self._val_count = torch.zeros((), dtype=torch.float64)
        self.val_targets = 0  # targets of the last validation, over all devices
        self._takes_positions = "position_ids" in inspect.signature(self.model.forward).parameters

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, S, vocab] for `input_ids` [B, S] (and `position_ids` [B, S] when given)."""
        if position_ids is None:
            return self.model(input_ids).logits
        if not self._takes_positions:
            # Only RoPE blocks use positions; a model without the argument cannot honour them.
            if not getattr(self, "_warned_positions", False):
                log.warning("this BioLM takes no position_ids; packed members get running positions")
                self._warned_positions = True
            return self.model(input_ids).logits
        return self.model(input_ids, position_ids=position_ids).logits

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["input_ids"], batch.get("position_ids"))
        count = (batch["labels"] != IGNORE_INDEX).sum().clamp(min=1)
        loss = token_nll(logits, batch["labels"]) / count
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_nll = torch.zeros((), dtype=torch.float64, device=self.device)
        self._val_count = torch.zeros((), dtype=torch.float64, device=self.device)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self(batch["input_ids"], batch.get("position_ids"))
        self._val_nll += token_nll(logits, batch["labels"]).double()
        self._val_count += (batch["labels"] != IGNORE_INDEX).sum().double()

    def on_validation_epoch_end(self) -> None:
        nll = self.trainer.strategy.reduce(self._val_nll, reduce_op="sum")
        count = self.trainer.strategy.reduce(self._val_count, reduce_op="sum")
        loss = (nll / count.clamp(min=1)).float()
        self.val_targets = int(count.item())
        self.log("val_loss", loss, prog_bar=True, sync_dist=False)
        self.log("val_ppl", torch.exp(loss), sync_dist=False)

    def configure_optimizers(self):
        # Weight decay only on matrices; norms, biases, gate biases and embeddings keep their scale.
        decay, no_decay = [], []
        for name, param in self.model.named_parameters():
            (decay if param.ndim >= 2 and "embedding" not in name else no_decay).append(param)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.optim.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.optim.lr,
            betas=(self.optim.beta1, self.optim.beta2),
        )
        schedule = warmup_cosine(self.optim.warmup_steps, self.max_steps, self.optim.min_lr_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    @classmethod
    def from_configs(cls, model: ModelConfig, optim: OptimConfig, max_steps: int) -> CausalLMTask:
        return cls(dataclasses.asdict(model), dataclasses.asdict(optim), max_steps)
