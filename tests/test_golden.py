"""Golden outputs: a tiny seeded model of every block type pins its logits and an embedding file (to
float rounding, which differs between CPUs) and generated FASTA byte for byte, so that a structural
change that claims "no change of behaviour" is checked against what the code produced before it.

The golden files in tests/golden/ were written by this module with BIOLM_WRITE_GOLDEN=1
(`BIOLM_WRITE_GOLDEN=1 pytest tests/test_golden.py`); rewrite them only for an intended change of
numbers, and say so in the commit.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from biolm.cli.main import main
from biolm.models import BioLM, ModelConfig
from biolm.models.io import save
from biolm.tokenizers import ProteinTokenizer

GOLDEN = Path(__file__).parent / "golden"
WRITE = os.environ.get("BIOLM_WRITE_GOLDEN") == "1"
SEQUENCES = ["MKTAYIAKQRQISFVKSHFSRQ", "MKVLAAGIVGLLLA", "WWPEQ"]
FAMILY = ">a\nMKTAYIAKQRQISFVKSHFSRQ\n>b desc\nMKTAYIAKQR-QISFVKSHF\n>c\nMKVAYIAKQRQ\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A protein model with one block of each type (mLSTM, sLSTM, linear attention, attention, xLSTM-7B)."""
    tokenizer = ProteinTokenizer()
    torch.manual_seed(1234)
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, d_model=32, n_layers=5, num_heads=2, chunk_size=8, pattern="msatx"
    )
    return save(BioLM(config).eval(), tokenizer, tmp_path_factory.mktemp("golden") / "model")


def check(name: str, data: bytes) -> None:
    path = GOLDEN / name
    if WRITE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(data)
    assert path.is_file(), f"{path} is missing: write it with BIOLM_WRITE_GOLDEN=1"
    if name.endswith(".npy"):
        # Arrays to float rounding: another CPU (AMD vs Intel, AVX-512 or not) sums in another order
        # and differs in the last bit (seen: 6e-7 on logits of magnitude 1.7).
        got, golden = np.load(io.BytesIO(data)), np.load(path)
        assert got.dtype == golden.dtype and got.shape == golden.shape, f"{name}: another dtype or shape"
        np.testing.assert_allclose(
            got, golden, rtol=1e-5, atol=1e-5, err_msg=f"{name} differs from the golden file"
        )
        return
    assert data == path.read_bytes(), f"{name} differs from the golden file"


def test_logits(model_dir):
    import biolm

    model = biolm.load(model_dir)
    ids = torch.tensor([model.tokenizer.encode(SEQUENCES[0])])
    with torch.no_grad():
        logits = model(ids).logits
    buffer = io.BytesIO()
    np.save(buffer, logits.float().numpy())
    check("logits.npy", buffer.getvalue())


def test_embedding_file(model_dir, tmp_path):
    fasta = tmp_path / "in.fasta"
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(SEQUENCES)))
    out = tmp_path / "emb.npy"
    assert main(["embed", str(model_dir), str(fasta), "-o", str(out), "--no-progress"]) == 0
    check("embeddings.npy", out.read_bytes())


@pytest.mark.parametrize("mode", ["plain", "context", "prompt"])
def test_generated_fasta(model_dir, tmp_path, mode):
    out = tmp_path / "out.fasta"
    family = tmp_path / "family.fasta"
    family.write_text(FAMILY)
    extra = {"plain": [], "context": ["--context", str(family)], "prompt": ["--prompt", "MKT"]}
    args = ["generate", str(model_dir), "-o", str(out), "-n", "6", "--length", "24", "--seed", "7"]
    assert main([*args, *extra[mode], "--no-progress"]) == 0
    check(f"generated_{mode}.fasta", out.read_bytes())
