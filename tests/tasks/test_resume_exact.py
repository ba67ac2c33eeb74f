"""A run killed with SIGKILL and resumed with `biolm train --resume` has the loss curve of an
uninterrupted run: same windows in the interrupted epoch, same dropout masks, same steps."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HARNESS = Path(__file__).with_name("train_harness.py")

TINY = [
    "trainer.max_steps=10",
    "trainer.checkpoint_every_n_steps=3",
    "trainer.log_every_n_steps=1",
    "trainer.accelerator=cpu",
    "data.seq_len=32",
    "data.batch_size=4",
    "data.windows_per_epoch=16",  # 4 steps per epoch: the kills fall in the second epoch
    "data.max_val_windows=6",
    "model.d_model=16",
    "model.n_layers=1",
    "model.num_heads=2",
    "model.chunk_size=16",
    "model.dropout=0.1",  # draws from the global generator, which Lightning does not checkpoint
    "optim.warmup_steps=2",
]


def harness(*args: str, killed: bool = False) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(HARNESS), *args], capture_output=True, text=True, timeout=600)
    if killed:
        assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    else:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def curves(run: Path) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {"train_loss": {}, "val_loss": {}}
    with open(run / "metrics.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            for key, values in out.items():
                if row.get(key):
                    assert int(row["step"]) not in values, f"step {row['step']} logged twice"
                    values[int(row["step"])] = float(row[key])
    return out


def assert_same_curves(reference: Path, resumed: Path) -> None:
    want, got = curves(reference), curves(resumed)
    for key in want:
        assert sorted(got[key]) == sorted(want[key]), key
        steps = sorted(want[key])
        np.testing.assert_allclose([got[key][s] for s in steps], [want[key][s] for s in steps], rtol=1e-6)


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    path = tmp_path_factory.mktemp("genome") / "g.fa"
    bases = "".join(np.random.default_rng(0).choice(list("ACGT"), 20_000))
    path.write_text(">chr1\n" + "\n".join(bases[i : i + 80] for i in range(0, len(bases), 80)) + "\n")
    return path


def run_args(genome: Path, root: Path, name: str, *extra: str, domain: str = "dna") -> list[str]:
    data = [f"data.path={genome}"] if domain == "dna" else []
    return ["--", "train", domain, "--no-progress", f"run_root={root}", f"name={name}", *data, *TINY, *extra]


@pytest.fixture(scope="module")
def reference(genome, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    harness(*run_args(genome, root, "reference"))
    return root / "reference"


def test_sigkill_mid_epoch_then_resume_gives_the_same_loss_curve(genome, reference, tmp_path):
    # Checkpoint at step 3 (mid epoch 0); killed as step 6 starts (epoch 1): steps 4 and 5 are redone.
    harness("--kill-at-step", "5", *run_args(genome, tmp_path, "killed"), killed=True)
    run = tmp_path / "killed"
    assert not (run / "summary.json").exists()
    harness("--", "train", "dna", "--no-progress", "--resume", str(run))
    assert_same_curves(reference, run)


def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one(genome, reference, tmp_path):
    # Writes: last.ckpt (step 3), best-step=4.ckpt, then last.ckpt at step 6, killed halfway.
    harness("--kill-in-save", "3", *run_args(genome, tmp_path, "cut"), killed=True)
    run = tmp_path / "cut"
    assert [p.name for p in (run / "checkpoints").glob(".*")], "the harness did not cut a write"
    done = harness("--", "train", "dna", "--no-progress", "--resume", str(run))
    assert "resuming from" in done.stdout and "last.ckpt" in done.stdout
    assert_same_curves(reference, run)


def test_sigterm_writes_a_checkpoint_exits_nonzero_and_resumes_exactly(genome, reference, tmp_path):
    # As at a scheduler's time limit.
    done = subprocess.run(
        [sys.executable, str(HARNESS), "--term-at-step", "4", *run_args(genome, tmp_path, "term")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    run = tmp_path / "term"
    assert done.returncode == 2
    # Lightning lets the step in progress finish, then stops.
    assert f"stopped by SIGTERM at step 5; continue with `biolm train dna --resume {run}`" in done.stderr
    assert (run / "checkpoints" / "on_exception.ckpt").is_file()
    done = harness("--", "train", "dna", "--no-progress", "--resume", str(run))
    assert "on_exception.ckpt" in done.stdout
    assert_same_curves(reference, run)


@pytest.mark.slow
@pytest.mark.parametrize(
    "domain, extra, kill",
    [
        ("dna", ["trainer.accumulate_grad_batches=2"], "4"),
        ("dna", ["task.objective=mlm", "model.bidirectional=true"], "5"),
        ("dna", [], "1"),  # killed before the first checkpoint: --resume says there is none
        ("protein", ["data.seq_len=64", "data.windows_per_epoch=12"], "5"),
        ("chem", ["data.seq_len=64", "data.windows_per_epoch=12"], "5"),
        ("protein", ["data.seq_len=64", "data.windows_per_epoch=12", "task.objective=fim"], "4"),
    ],
)
def test_sigkill_and_resume_in_other_settings(genome, tmp_path, domain, extra, kill):
    harness(*run_args(genome, tmp_path, "reference", *extra, domain=domain))
    harness("--kill-at-step", kill, *run_args(genome, tmp_path, "killed", *extra, domain=domain), killed=True)
    run = tmp_path / "killed"
    if not list((run / "checkpoints").glob("*.ckpt")):
        done = subprocess.run(
            [sys.executable, str(HARNESS), "--", "train", domain, "--resume", str(run)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 2 and "no checkpoint to resume from" in done.stderr
        return
    harness("--", "train", domain, "--no-progress", "--resume", str(run))
    assert_same_curves(tmp_path / "reference", run)
