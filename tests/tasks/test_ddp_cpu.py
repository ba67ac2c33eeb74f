"""Data-parallel training on CPU: `trainer.devices=2 trainer.strategy=ddp` (two gloo processes started by
Lightning) gives each rank its own examples, none twice, and both ranks end with the same weights."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

HARNESS = Path(__file__).with_name("train_harness.py")


def read_trace(path: Path) -> dict[int, list[int]]:
    """epoch -> indices read, in order."""
    seen: dict[int, list[int]] = defaultdict(list)
    for line in path.read_text().splitlines():
        epoch, index = map(int, line.split())
        seen[epoch].append(index)
    return seen


def single_process_val_targets(overrides: list[str]) -> int:
    from biolm.configs import load_config, packaged_config, to_train_config
    from biolm.domains import DNA
    from biolm.tasks.runner import count_targets

    cfg = to_train_config(load_config(packaged_config("dna"), overrides))
    return count_targets(DNA.training_data(cfg).datamodule)


def test_ddp_two_processes_shard_without_duplicates_and_agree_on_weights(tmp_path):
    genome = tmp_path / "g.fa"
    bases = "".join(np.random.default_rng(0).choice(list("ACGT"), 20_000))
    genome.write_text(">chr1\n" + "\n".join(bases[i : i + 80] for i in range(0, len(bases), 80)) + "\n")
    trace = tmp_path / "trace"
    trace.mkdir()
    args = [
        "train",
        "dna",
        "--no-progress",
        f"data.path={genome}",
        f"run_root={tmp_path / 'runs'}",
        "name=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.max_steps=6",
        "trainer.log_every_n_steps=1",
        "data.seq_len=32",
        "data.batch_size=4",
        # Odd on purpose: Lightning's DistributedSampler would pad each rank to 7 with a duplicate.
        "data.windows_per_epoch=13",
        "data.max_val_windows=5",
        "model.d_model=16",
        "model.n_layers=1",
        "model.num_heads=2",
        "model.chunk_size=16",
        "optim.warmup_steps=2",
    ]
    done = subprocess.run(
        [sys.executable, str(HARNESS), "--trace", str(trace), "--", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    train = [read_trace(trace / f"train-{rank}.txt") for rank in (0, 1)]
    assert set(train[0]) == set(train[1]) == {0, 1, 2}  # 6 examples per rank per epoch: 2 steps of 4 + 2
    for epoch in train[0]:
        first, second = train[0][epoch], train[1][epoch]
        assert len(first) == len(set(first)) == len(second) == len(set(second)) == 6
        assert not set(first) & set(second), f"epoch {epoch}: an example on both ranks"
        assert set(first) | set(second) == set(range(12))  # the 13th is left out, not repeated

    val = [read_trace(trace / f"val-{rank}.txt")[0] for rank in (0, 1)]
    assert not set(val[0]) & set(val[1]) and set(val[0]) | set(val[1]) == set(range(5))
    # Every validation pass (sanity check, each epoch, the final one) scores each window once.
    assert len(val[0]) % 3 == 0 and len(val[1]) % 2 == 0 and len(val[0]) // 3 == len(val[1]) // 2

    weights = [torch.load(trace / f"weights-{rank}.pt", weights_only=True) for rank in (0, 1)]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name

    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["ddp"], "rank 1 must not create a run directory of its own"
    summary = json.loads((tmp_path / "runs" / "ddp" / "summary.json").read_text())
    assert summary["steps"] == 6
    # Validation targets are summed over both ranks: as many as one process scores.
    assert summary["val_targets"] == single_process_val_targets(args[3:])
    assert done.stdout.count("validation loss") == 1, "only rank 0 prints the summary"
