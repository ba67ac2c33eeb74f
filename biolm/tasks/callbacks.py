"""Lightning callbacks of biolm's own."""

from __future__ import annotations

import random
import time

import lightning as L
import numpy as np
import torch

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
    """Tell the training windows which epoch it is, so each epoch draws new windows.

    For loaders of one's own; biolm's runs use `ShardSampler.set_epoch`, which also sets the epoch
    of a resumed run before its loader starts.
    """

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        dataset = trainer.train_dataloader.dataset if trainer.train_dataloader is not None else None
        if dataset is not None and hasattr(dataset, "epoch"):
            dataset.epoch = trainer.current_epoch


class DataPosition(L.Callback):
    """Count the training batches whose step completed, into the `ResumableData` being trained on.

    Runs before the checkpoint callbacks (Lightning moves those last), so a checkpoint written at the
    end of a step already counts that step's batch.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        datamodule = trainer.datamodule
        if hasattr(datamodule, "batch_done"):
            datamodule.batch_done(trainer.current_epoch, len(batch["input_ids"]))


class RNGStates(L.Callback):
    """Save the global random generators (Python, NumPy, torch, CUDA) in checkpoints and restore them
    right before the first training step of a resumed run, so that dropout masks continue as in an
    uninterrupted run. Lightning saves none of them.

    biolm's data and masking draw from their own seeded generators; what is left on the global ones is
    the model's (dropout). Every rank was seeded alike, so rank 0's state (the one written) is every
    rank's.
    """

    def __init__(self) -> None:
        self._pending: dict | None = None

    def state_dict(self) -> dict:
        version, internal, gauss = random.getstate()
        np_state = np.random.get_state()
        state = {
            "python": [version, list(internal), gauss],
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        self._pending = state_dict

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, *rest = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"])
