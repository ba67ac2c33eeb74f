"""A non-finite loss stops the step: no weight moves, the step and batch are logged, the run skips or
halts as configured, and no NaN reaches a checkpoint."""

from __future__ import annotations

import logging

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from biolm.tasks.checkpoints import AtomicCheckpointIO, check_checkpoint
from biolm.tasks.faults import NonFiniteGuard, NonFiniteLossError


class Regression(L.LightningModule):
    """Least squares; the loss of the steps in `nan_steps` is NaN, the gradients of `inf_grad_steps`
    are infinite (with a finite loss)."""

    def __init__(self, nan_steps=(), inf_grad_steps=()) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.nan_steps, self.inf_grad_steps = set(nan_steps), set(inf_grad_steps)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = (self.layer(x).squeeze(-1) - y).pow(2).mean()
        if self.global_step in self.nan_steps:
            loss = loss * float("nan")
        return loss

    def on_after_backward(self) -> None:
        if self.global_step in self.inf_grad_steps:
            self.layer.weight.grad[0, 0] = float("inf")

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=0.05, weight_decay=0.1)


class Snapshots(L.Callback):
    """Weights and AdamW step counts after every optimizer step (index = global step)."""

    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []
        self.adam_steps: list[float] = []

    def _snap(self, trainer, pl_module) -> None:
        self.weights.append(pl_module.layer.weight.detach().clone())
        state = trainer.optimizers[0].state.get(pl_module.layer.weight, {})
        self.adam_steps.append(float(state.get("step", 0)))

    def on_train_start(self, trainer, pl_module) -> None:
        self._snap(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._snap(trainer, pl_module)


def fit(module, guard, tmp_path, steps=6, accumulate=1, callbacks=()):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(64, 3), torch.randn(64))
    snaps = Snapshots()
    trainer = L.Trainer(
        max_steps=steps,
        accumulate_grad_batches=accumulate,
        callbacks=[guard, snaps, *callbacks] if guard else [snaps, *callbacks],
        logger=False,
        enable_checkpointing=bool(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(module, DataLoader(data, batch_size=4))
    return snaps


def test_skip_leaves_weights_and_optimizer_state_untouched_and_logs_the_step(tmp_path, caplog):
    guard = NonFiniteGuard("skip", max_consecutive=3)
    with caplog.at_level(logging.WARNING, logger="biolm.tasks.faults"):
        snaps = fit(Regression(nan_steps={2}), guard, tmp_path)
    # Snapshot i is taken after optimizer step i (0 = before training).
    assert torch.equal(snaps.weights[3], snaps.weights[2]), "the NaN step moved a weight"
    assert snaps.adam_steps[3] == snaps.adam_steps[2], "AdamW counted the skipped step"
    assert not torch.equal(snaps.weights[4], snaps.weights[3]), "training did not go on"
    assert all(torch.isfinite(w).all() for w in snaps.weights)
    assert guard.skipped_steps == [2]
    assert "non-finite loss (nan) at step 2 (epoch 0, batch 2): optimizer step skipped" in caplog.text


def test_nonfinite_gradients_with_a_finite_loss_are_skipped_too(tmp_path, caplog):
    guard = NonFiniteGuard("skip")
    with caplog.at_level(logging.WARNING, logger="biolm.tasks.faults"):
        snaps = fit(Regression(inf_grad_steps={1}), guard, tmp_path)
    assert torch.equal(snaps.weights[2], snaps.weights[1])
    assert "non-finite gradients at step 1" in caplog.text


def test_skip_with_gradient_accumulation_names_the_bad_micro_batch(tmp_path, caplog):
    guard = NonFiniteGuard("skip")
    with caplog.at_level(logging.WARNING, logger="biolm.tasks.faults"):
        fit(Regression(nan_steps={1}), guard, tmp_path, steps=3, accumulate=2)
    # Step 1 is batches 2 and 3; the loss is NaN for both (global_step is 1 during both).
    assert "at step 1 (epoch 0, batch 2, 3)" in caplog.text
    assert guard.skipped_steps == [1]


def test_halt_stops_before_the_update_with_a_one_line_error(tmp_path):
    snaps_holder = Snapshots()
    with pytest.raises(NonFiniteLossError) as err:
        fit(Regression(nan_steps={3}), NonFiniteGuard("halt"), tmp_path, callbacks=[snaps_holder])
    message = str(err.value)
    assert "\n" not in message and "step 3" in message and "trainer.on_nonfinite=halt" in message
    assert len(snaps_holder.weights) == 4  # before training and after steps 0, 1, 2


def test_too_many_consecutive_skips_halt(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"3 steps in a row .*max_nonfinite_skips=2"):
        fit(Regression(nan_steps=set(range(2, 100))), NonFiniteGuard("skip", 2), tmp_path, steps=20)


def test_skips_that_are_not_consecutive_do_not_add_up(tmp_path):
    guard = NonFiniteGuard("skip", max_consecutive=1)
    fit(Regression(nan_steps={1, 3, 5}), guard, tmp_path, steps=8)
    assert guard.skipped_steps == [1, 3, 5]


def test_without_the_guard_nan_weights_never_reach_a_checkpoint(tmp_path, caplog):
    # The guard's absence lets NaN into the weights at step 2; the checkpoint IO then keeps step 1's file.
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0, every_n_train_steps=1)
    with caplog.at_level(logging.ERROR, logger="biolm.tasks.checkpoints"):
        snaps = fit(Regression(nan_steps={2}), None, tmp_path, steps=4, callbacks=[ckpt])
    assert not torch.isfinite(snaps.weights[-1]).all(), "the fault was not injected"
    assert check_checkpoint(tmp_path / "last.ckpt") == 2
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in saved.values() if v.is_floating_point())
    assert "not writing checkpoint" in caplog.text
