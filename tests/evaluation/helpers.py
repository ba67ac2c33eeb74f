"""Tiny model directories and synthetic labelled files for the evaluation tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from biolm.models import BioLM, ModelConfig
from biolm.models.io import save
from biolm.tokenizers import get_tokenizer

WILD_TYPE = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"


def tiny_model_dir(path: Path, kind: str = "protein", seed: int = 0, **overrides) -> Path:
    """Save a randomly initialised two-layer model (d_model 16) with the `kind` tokenizer to `path`."""
    tokenizer = get_tokenizer(kind)
    torch.manual_seed(seed)
    settings = dict(
        vocab_size=tokenizer.vocab_size, d_model=16, n_layers=2, num_heads=2, chunk_size=8, backend="torch"
    )
    model = BioLM(ModelConfig(**{**settings, **overrides}))
    return save(model, tokenizer, path)


def write_table(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def motif_rows(n: int, seed: int = 0, length: int = 12) -> list[list]:
    """Random protein sequences; label 1 when it contains the motif WWW, alternately."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVY"))  # no W, so only the motif has it
    rows = []
    for i in range(n):
        seq = "".join(rng.choice(letters, length))
        if i % 2:
            at = rng.integers(0, length - 3)
            seq = seq[:at] + "WWW" + seq[at + 3 :]
        rows.append([seq, i % 2])
    return rows


def dms_rows(positions=(2, 5, 9), letters="ACDG") -> list[list]:
    """ProteinGym-style rows of single and double mutants of WILD_TYPE."""
    rows = []
    for pos in positions:
        for mt in letters:
            if WILD_TYPE[pos - 1] == mt:
                continue
            seq = WILD_TYPE[: pos - 1] + mt + WILD_TYPE[pos:]
            rows.append([f"{WILD_TYPE[pos - 1]}{pos}{mt}", seq, float(len(rows) % 7)])
    seq = list(WILD_TYPE)
    seq[1], seq[4] = "A", "C"
    rows.append([f"{WILD_TYPE[1]}2A:{WILD_TYPE[4]}5C", "".join(seq), 3.5])
    return rows
