"""`biolm train` under faults: non-finite losses (skip / halt), damaged checkpoints on `--resume`, and
trainer options Lightning refuses — each a one-line error or a logged, recoverable event."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from biolm.cli.main import main
from biolm.tasks.clm import CausalLMTask

TINY = [
    "trainer.max_steps=6",
    "trainer.checkpoint_every_n_steps=2",
    "trainer.log_every_n_steps=1",
    "trainer.accelerator=cpu",
    "data.seq_len=32",
    "data.batch_size=4",
    "data.windows_per_epoch=16",
    "data.max_val_windows=6",
    "model.d_model=16",
    "model.n_layers=1",
    "model.num_heads=2",
    "model.chunk_size=16",
    "optim.warmup_steps=2",
]


@pytest.fixture(scope="module")
def genome(tmp_path_factory):
    path = tmp_path_factory.mktemp("genome") / "g.fa"
    bases = "".join(np.random.default_rng(0).choice(list("ACGT"), 20_000))
    path.write_text(">chr1\n" + "\n".join(bases[i : i + 80] for i in range(0, len(bases), 80)) + "\n")
    return path


def train_args(genome, root, name, *extra):
    return [
        "train",
        "dna",
        "--no-progress",
        f"data.path={genome}",
        f"run_root={root}",
        f"name={name}",
        *TINY,
        *extra,
    ]


@pytest.fixture
def nan_at(monkeypatch):
    """Make the logits, so the loss, of the given training steps NaN."""

    real = CausalLMTask.forward

    def install(*steps: int) -> None:
        def forward(self, *args, **kwargs):
            logits = real(self, *args, **kwargs)
            return logits * float("nan") if self.training and self.global_step in steps else logits

        monkeypatch.setattr(CausalLMTask, "forward", forward)

    return install


def metrics(run):
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_skip_logs_the_step_and_keeps_every_weight_finite(genome, tmp_path, nan_at, caplog):
    nan_at(2)
    assert main(train_args(genome, tmp_path, "skip")) == 0
    run = tmp_path / "skip"
    assert "non-finite loss (nan) at step 2 (epoch 0, batch 2): optimizer step skipped" in caplog.text
    rows = {int(r["step"]): r for r in metrics(run) if r["train_loss"]}
    assert math.isnan(float(rows[2]["train_loss"])) and rows[2]["skipped_steps"] == "1.0"
    assert all(math.isfinite(float(r["train_loss"])) for s, r in rows.items() if s != 2)
    assert json.loads((run / "summary.json").read_text())["steps"] == 6
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_halt_is_a_one_line_error_and_its_checkpoint_resumes(genome, tmp_path, nan_at, capsys):
    nan_at(3)
    assert main(train_args(genome, tmp_path, "halt", "trainer.on_nonfinite=halt")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = [x for x in err.splitlines() if x.startswith("biolm train: error:")]
    assert line == [
        "biolm train: error: non-finite loss (nan) at step 3 (epoch 0, batch 3); stopped "
        "(trainer.on_nonfinite=halt), no weight was updated"
    ]
    run = tmp_path / "halt"
    state = torch.load(run / "checkpoints" / "on_exception.ckpt", weights_only=True)
    assert state["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    # The halted run resumes once the cause is gone (here: no more NaN), from the failed step on.
    nan_at()
    assert main(["train", "dna", "--no-progress", "--resume", str(run)]) == 0
    steps = [int(r["step"]) for r in metrics(run) if r["train_loss"]]
    assert steps == [0, 1, 2, 3, 4, 5]


def test_resume_skips_a_damaged_checkpoint_and_names_it(genome, tmp_path, capsys, caplog):
    assert main(train_args(genome, tmp_path, "dmg")) == 0
    ckpts = tmp_path / "dmg" / "checkpoints"
    last = ckpts / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated, and now the newest file
    assert (
        main(["train", "dna", "--no-progress", "--resume", str(tmp_path / "dmg"), "trainer.max_steps=7"]) == 0
    )
    assert "last.ckpt: truncated or corrupt checkpoint" in caplog.text
    assert "resuming from" in capsys.readouterr().out
    for path in ckpts.glob("*.ckpt"):
        path.write_bytes(b"garbage")
    assert main(["train", "dna", "--no-progress", "--resume", str(tmp_path / "dmg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("biolm train: error: no good checkpoint to resume from: ")
    assert ".ckpt: truncated or corrupt checkpoint" in err[-1]


def test_resume_with_another_model_shape_is_a_config_error(genome, tmp_path, capsys):
    assert main(train_args(genome, tmp_path, "shape", "trainer.max_steps=2")) == 0
    run = tmp_path / "shape"
    assert main(["train", "dna", "--no-progress", "--resume", str(run), "model.d_model=32"]) == 2
    assert "was trained with model.d_model=16, the config says 32" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.strategy=dpp", "trainer: You selected an invalid strategy name: `strategy='dpp'`"),
        ("trainer.precision=bf17", "trainer: Precision 'bf17' is invalid"),
        ("trainer.strategy=fsdp", "trainer: The strategy `fsdp` requires a GPU accelerator"),
        ("trainer.on_nonfinite=ignore", "trainer.on_nonfinite must be one of skip, halt; got 'ignore'"),
        ("trainer.max_nonfinite_skips=-1", "trainer.max_nonfinite_skips must be >= 0"),
        ("trainer.num_nodes=0", "trainer.num_nodes must be at least 1"),
    ],
)
def test_bad_trainer_options_are_one_line_errors_that_leave_nothing(
    genome, tmp_path, capsys, override, message
):
    assert main(train_args(genome, tmp_path, "bad", override)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("biolm train: error:")
    assert not (tmp_path / "bad").exists()
