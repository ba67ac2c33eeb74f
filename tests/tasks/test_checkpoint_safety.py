"""Checkpoints are read with the weights-only unpickler only: a crafted pickle that would run code is
refused by `biolm train --resume` in one line naming the file, and never executed; the checkpoints a
real run writes need nothing beyond the weights-only defaults."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from biolm.cli.main import main
from biolm.tasks.checkpoints import safe_load

TINY = [
    "trainer.max_steps=2",
    "trainer.checkpoint_every_n_steps=1",
    "trainer.accelerator=cpu",
    "data.seq_len=32",
    "data.batch_size=4",
    "data.windows_per_epoch=8",
    "data.max_val_windows=4",
    "model.d_model=16",
    "model.n_layers=1",
    "model.num_heads=2",
    "model.chunk_size=16",
    "optim.warmup_steps=1",
]


class TouchOnLoad:
    """Unpickles as `os.system("touch <marker>")`: what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    genome = root / "g.fa"
    bases = "".join(np.random.default_rng(0).choice(list("ACGT"), 8_000))
    genome.write_text(">chr1\n" + "\n".join(bases[i : i + 80] for i in range(0, len(bases), 80)) + "\n")
    args = ["train", "dna", "--no-progress", f"data.path={genome}", f"run_root={root}", "name=r", *TINY]
    assert main(args) == 0
    return root / "r"


def test_a_real_checkpoint_needs_only_the_weights_only_defaults(run_dir):
    checkpoint = safe_load(run_dir / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 2
    assert "state_dict" in checkpoint and "optimizer_states" in checkpoint


def test_resume_refuses_a_checkpoint_that_would_run_code(run_dir, tmp_path, capsys):
    marker = tmp_path / "pwned"
    last = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = safe_load(last)
    checkpoint["callbacks"] = {"hook": TouchOnLoad(marker)}
    torch.save(checkpoint, last)

    assert main(["train", "dna", "--no-progress", "--resume", str(run_dir), "trainer.max_steps=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"biolm train: error: {last}: refused checkpoint: its pickle asks for ")
    assert "system" in err[0]
    assert not marker.exists(), "the crafted pickle ran"

    # The file is truly hostile: a full unpickle (in another process) runs it.
    code = f"import torch; torch.load({str(last)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert marker.exists()


UNSAFE_LOADERS = [
    re.compile(pattern)
    for pattern in (
        r"\.load\([^)]*weights_only\s*=\s*(False|None)",
        r"allow_pickle\s*=\s*True",
        r"yaml\.(unsafe_)?load\(",
        r"pickle\.loads?\(",
        r"Unpickler\(",
    )
]


def test_no_loader_in_the_package_can_unpickle_in_full():
    # Every reader of a file a user may have been given: torch.load weights-only (checkpoints),
    # yaml.safe_load (configs, model directories), np.load without pickles (caches), json, safetensors.
    package = Path(__file__).resolve().parents[2] / "biolm"
    offenders = [
        f"{path.relative_to(package.parent)}: {found.group(0)}"
        for path in package.rglob("*.py")
        for pattern in UNSAFE_LOADERS
        for found in pattern.finditer(path.read_text())
    ]
    assert offenders == []
