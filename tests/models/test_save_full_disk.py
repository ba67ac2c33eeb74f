"""Saving a model directory on a full disk: one error naming the directory, the previous one intact."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from biolm.models.io import save
from tests.inference.helpers import tiny_model, tokenizer_of

ROOT = Path(__file__).resolve().parents[2]

SAVE_UNDER_A_LIMIT = """
import resource, signal, sys
from biolm.errors import DiskFullError
from biolm.models.io import save
from tests.inference.helpers import tiny_model, tokenizer_of
model = tiny_model(tokenizer_of("protein"), seed=1)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # the weights are ~60 kB
try:
    save(model, model.tokenizer, sys.argv[1])
except DiskFullError as err:
    print(err)
    sys.exit(3)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="RLIMIT_FSIZE needs a POSIX system")
def test_a_full_disk_while_saving_keeps_the_previous_model_directory(tmp_path):
    # safetensors reports a full disk as a SafetensorError quoting the errno: it was a traceback.
    target = tmp_path / "model"
    model = tiny_model(tokenizer_of("protein"))
    save(model, model.tokenizer, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    proc = subprocess.run(
        [sys.executable, "-c", SAVE_UNDER_A_LIMIT, str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"{target}: cannot write: File too large"
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging directory left
