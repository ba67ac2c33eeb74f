"""Lightning callbacks of biolm's own."""

from __future__ import annotations

import time

import lightning as L

from biolm.tokenizers.base import PAD_ID


class Throughput(L.Callback):
    """Training tokens per second, timing only training batches (not validation or checkpoints).

    Padding is not counted: batches of proteins of different lengths carry many <pad> tokens.
    """

    def __init__(self) -> None:
        self.tokens = 0
        self.seconds = 0.0
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds += time.perf_counter() - self._start
        self.tokens += int((batch["input_ids"] != PAD_ID).sum()) * trainer.world_size

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else float("nan")


class SetEpoch(L.Callback):
    """Tell the training windows which epoch it is, so each epoch draws new windows."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        dataset = trainer.train_dataloader.dataset if trainer.train_dataloader is not None else None
        if dataset is not None and hasattr(dataset, "epoch"):
            dataset.epoch = trainer.current_epoch
