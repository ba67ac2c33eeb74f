"""Numerical faults in training: a step whose loss or gradients are not finite changes no weight.

`NonFiniteGuard` looks at every micro-batch's loss before its backward pass and at the gradients
before the optimizer step (after data-parallel ranks have averaged them). A bad step is logged with
its step, epoch and batch indices and then either skipped (`trainer.on_nonfinite=skip`: the gradients
are dropped, so AdamW moves no weight and no moment; the learning-rate schedule still advances) or
ends the run (`halt`: a one-line `NonFiniteLossError`). More than `trainer.max_nonfinite_skips`
consecutive skips also end the run: by then the weights, not one batch, are the problem.

Every rank takes the same decision (one boolean all-reduce per optimizer step when there are several),
so data-parallel ranks never diverge or wait on one another.
"""

from __future__ import annotations

import logging

import lightning as L
import torch

from biolm.errors import BiolmError

log = logging.getLogger(__name__)

NONFINITE_MODES = ("skip", "halt")


class NonFiniteLossError(BiolmError):
    """Training met a non-finite loss (or gradients) and was configured, or forced, to stop."""


class RunStopped(BiolmError):
    """Training was stopped from outside (SIGTERM: a scheduler's time limit or preemption)."""


class NonFiniteGuard(L.Callback):
    """Skip or halt on a non-finite loss or gradient (see the module docstring).

    Args:
        mode: "skip" or "halt".
        max_consecutive: the most optimizer steps in a row that may be skipped.
    """

    def __init__(self, mode: str = "skip", max_consecutive: int = 10) -> None:
        if mode not in NONFINITE_MODES:
            raise ValueError(f"mode must be one of {NONFINITE_MODES}, got {mode!r}")
        self.mode, self.max_consecutive = mode, max_consecutive
        self.consecutive = 0
        self.skipped_steps: list[int] = []  # global steps skipped in this session
        self._batch_idx = 0
        self._bad: list[tuple[int, float]] = []  # (batch index, loss) of this optimizer step's micro-batches

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch_idx = batch_idx

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            self._bad.append((self._batch_idx, float(loss.detach().float().flatten()[0])))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        bad_loss, self._bad = self._bad, []
        # A loss scaler (precision 16-mixed) overflows on purpose and skips those steps itself.
        scaled = getattr(trainer.precision_plugin, "scaler", None) is not None
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        bad_grads = not scaled and not _all_finite([p.grad for p in params])
        bad = bool(bad_loss) or bad_grads
        if trainer.world_size > 1:
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            self.consecutive = 0
            return
        self.consecutive += 1
        step, epoch = trainer.global_step, trainer.current_epoch
        if bad_loss:
            batches = ", ".join(str(b) for b, _ in bad_loss)
            what = f"non-finite loss ({bad_loss[0][1]}) at step {step} (epoch {epoch}, batch {batches})"
        elif bad_grads:
            what = f"non-finite gradients at step {step} (epoch {epoch}, batch {self._batch_idx})"
        else:
            what = f"non-finite loss or gradients on another rank at step {step}"
        if self.mode == "halt":
            raise NonFiniteLossError(f"{what}; stopped (trainer.on_nonfinite=halt), no weight was updated")
        if self.consecutive > self.max_consecutive:
            raise NonFiniteLossError(
                f"{what}: {self.consecutive} steps in a row were non-finite "
                f"(trainer.max_nonfinite_skips={self.max_consecutive}); stopped, try a lower optim.lr"
            )
        log.warning("%s: optimizer step skipped (%d in a row)", what, self.consecutive)
        self.skipped_steps.append(step)
        for p in params:
            p.grad = None  # AdamW leaves parameters without a gradient untouched
        pl_module.log("skipped_steps", float(len(self.skipped_steps)), on_step=True, on_epoch=False)


def _all_finite(tensors: list[torch.Tensor]) -> bool:
    if not tensors:
        return True
    # One reduction per tensor and one sync, rather than a sync per tensor.
    flags = torch.stack([torch.isfinite(t).all() for t in tensors])
    return bool(flags.all())
