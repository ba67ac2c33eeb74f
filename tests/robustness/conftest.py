"""Tiny saved models (random weights, no training) of each domain, made once per test session."""

from __future__ import annotations

import pytest

from biolm.models.io import save
from tests.inference.helpers import tiny_model, tokenizer_of


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict:
    """`{"dna": Path, "protein": Path, "smiles": Path}`: 2-layer, 32-wide model directories."""
    root = tmp_path_factory.mktemp("tiny_models")
    dirs = {}
    for kind in ["dna", "protein", "smiles"]:
        model = tiny_model(tokenizer_of(kind))
        dirs[kind] = save(model, model.tokenizer, root / kind)
    return dirs
