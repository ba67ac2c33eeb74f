"""Runs `biolm ...` (the CLI's `main`) with faults injected, for the fault and distributed tests.

    python train_harness.py [--kill-at-step K] [--kill-in-save N] [--nan-at-step K ...] [--trace DIR]
        -- train dna ...

--kill-at-step K   SIGKILL this process as the batch of optimizer step K + 1 starts (after step K's
                   checkpoint, if one was due)
--kill-in-save N   SIGKILL this process halfway through writing its N-th checkpoint file
--term-at-step K   SIGTERM this process as the batch of optimizer step K + 1 starts (as a scheduler's
                   time limit does)
--nan-at-step K    the logits, so the loss, of training step K are NaN (repeatable)
--trace DIR        every rank appends the (epoch, index) of each example it reads to DIR/train-<rank>.txt
                   and DIR/val-<rank>.txt, and saves its final weights to DIR/weights-<rank>.pt

Lightning's own DDP launcher starts the other ranks by running this same script again, so they are
instrumented alike.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import lightning as L
import torch


def rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))


def kill() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(L.Callback):
    def __init__(self, step: int, signum: int = signal.SIGKILL) -> None:
        self.step, self.signum, self.sent = step, signum, False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step and not self.sent:
            self.sent = True
            sys.stdout.flush()
            os.kill(os.getpid(), self.signum)


class DumpWeights(L.Callback):
    def __init__(self, directory: str) -> None:
        self.directory = directory

    def on_train_end(self, trainer, pl_module) -> None:
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save(state, os.path.join(self.directory, f"weights-{rank()}.pt"))


def trace(cls, directory: str, kind: str) -> None:
    original = cls.__getitem__

    def traced(self, index):
        with open(os.path.join(directory, f"{kind}-{rank()}.txt"), "a") as handle:
            handle.write(f"{getattr(self, 'epoch', 0)} {index}\n")
        return original(self, index)

    cls.__getitem__ = traced


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kill-at-step", type=int)
    parser.add_argument("--kill-in-save", type=int)
    parser.add_argument("--term-at-step", type=int)
    parser.add_argument("--nan-at-step", type=int, action="append", default=[])
    parser.add_argument("--trace")
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv

    from biolm.cli.main import main as biolm_main
    from biolm.tasks import checkpoints, runner
    from biolm.tasks.clm import CausalLMTask

    extra: list[L.Callback] = []
    if args.kill_at_step is not None:
        extra.append(KillAt(args.kill_at_step))
    if args.term_at_step is not None:
        extra.append(KillAt(args.term_at_step, signal.SIGTERM))
    if args.kill_in_save is not None:
        saves = [0]
        real_save = torch.save

        def save(obj, f, *a, **k):
            saves[0] += 1
            if saves[0] < args.kill_in_save or not hasattr(f, "write"):
                return real_save(obj, f, *a, **k)
            import io

            buffer = io.BytesIO()
            real_save(obj, buffer, *a, **k)
            data = buffer.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            kill()

        checkpoints.torch.save = save  # the module's reference: only checkpoint writes are cut
    if args.nan_at_step:
        steps = set(args.nan_at_step)
        real_forward = CausalLMTask.forward

        def forward(self, *a, **k):
            logits = real_forward(self, *a, **k)
            return logits * float("nan") if self.training and self.global_step in steps else logits

        CausalLMTask.forward = forward
    if args.trace:
        from biolm.data.genome import TrainWindows, ValWindows

        trace(TrainWindows, args.trace, "train")
        trace(ValWindows, args.trace, "val")
        extra.append(DumpWeights(args.trace))
    if extra:
        real_trainer = runner._trainer
        runner._trainer = lambda cfg, run_dir, callbacks, progress: real_trainer(
            cfg, run_dir, [*callbacks, *extra], progress
        )
    return biolm_main(argv)


if __name__ == "__main__":
    sys.exit(main())
