"""`biolm embed` end to end on tiny saved models (random weights, no training) and `biolm.embed`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import biolm
from biolm.cli.main import main
from biolm.models import DNA_COMPLEMENT
from biolm.models.io import save
from tests.inference.helpers import tiny_model, tokenizer_of


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    dirs = {}
    for name, kind, extra in [
        ("dna", "dna", {}),
        ("protein", "protein", {}),
        ("smiles", "smiles", {}),
        ("dna_bi", "dna", {"bidirectional": True, "rc_equivariant": True, "complement": DNA_COMPLEMENT}),
    ]:
        model = tiny_model(tokenizer_of(kind), **extra)
        dirs[name] = save(model, model.tokenizer, root / name)
    return dirs


def _embed(*args) -> int:
    return main(["embed", *map(str, args), "--no-progress"])


def test_fasta_to_npy_with_manifest_in_input_order(model_dirs, tmp_path):
    fasta = tmp_path / "in.fa"
    fasta.write_text(">b second\nACGTTGCA\n>a|x\nacgtacgtacgtNNNN\n>b\nGGGGGGGGGGCCCCC\n>c\nAC\n")
    out = tmp_path / "emb.npy"
    assert _embed(model_dirs["dna"], fasta, "-o", out) == 0
    vectors = np.load(out)
    assert vectors.shape == (4, 32) and np.isfinite(vectors).all()
    manifest = [line.split("\t") for line in (tmp_path / "emb.manifest.tsv").read_text().splitlines()]
    assert manifest == [
        ["row", "id", "header"],
        ["0", "b", "b second"],
        ["1", "a_x", "a|x"],
        ["2", "b_2", "b"],
        ["3", "c", "c"],
    ]
    # Row order is the input order even though batches are sorted by length.
    expected = biolm.embed(biolm.load(model_dirs["dna"]), {"c": "AC", "b": "ACGTTGCA"}).vectors
    np.testing.assert_allclose(vectors[[3, 0]], expected, rtol=1e-5, atol=1e-6)


def test_layers_pool_and_rc_average_reach_the_output(model_dirs, tmp_path):
    fasta = tmp_path / "in.fa"
    fasta.write_text(">x\nACGTTGCAAT\n>y\nGATTACA\n")
    out = tmp_path / "emb.h5"
    assert (
        _embed(model_dirs["dna"], fasta, "-o", out, "--pool", "per-token", "--layers", "-1,0", "--rc-average")
        == 0
    )
    import h5py

    with h5py.File(out) as f:
        assert list(f["offsets"][:]) == [0, 10, 17] and f["layer_2"].shape == (17, 32)
        tokens = f["layer_2"][:10]
    api = biolm.embed(model_dirs["dna"], fasta, pool="per-token", layers=[-1, 0], rc_average=True)
    np.testing.assert_allclose(tokens, api.vectors[0][:, 0], rtol=1e-5, atol=1e-6)
    assert api.layers == [2, 0] and api.ids == ["x", "y"]


def test_bidirectional_rc_model_bos_pooling_to_parquet(model_dirs, tmp_path):
    fasta = tmp_path / "in.fa"
    fasta.write_text(">x\nACGTTGCAAT\n>y\nGATTACA\n")
    out = tmp_path / "emb.parquet"
    assert _embed(model_dirs["dna_bi"], fasta, "-o", out, "--pool", "bos") == 0
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert table["id"].to_pylist() == ["x", "y"]
    vectors = np.stack(table["layer_2"].to_numpy(zero_copy_only=False))
    assert vectors.shape == (2, 32) and not np.allclose(vectors[0], vectors[1])


def test_protein_a3m_and_smiles_csv(model_dirs, tmp_path):
    a3m = tmp_path / "fam.a3m"
    a3m.write_text(">q\nMKLV\n>h\nM-klv\n")
    out = tmp_path / "p.pt"
    assert _embed(model_dirs["protein"], a3m, "-o", out) == 0
    import torch

    data = torch.load(out)
    emb = data["embeddings"][2]
    torch.testing.assert_close(emb[0], emb[1])  # the same protein once gaps and case are undone
    csv = tmp_path / "mols.csv"
    csv.write_text("chembl,smiles,value\nm1,OCC,1\nm2,CCO,2\nm3,c1ccccc1,3\n")
    out = tmp_path / "m.npy"
    assert _embed(model_dirs["smiles"], csv, "-o", out, "--id-column", "chembl") == 0
    vectors = np.load(out)
    np.testing.assert_allclose(vectors[0], vectors[1])  # one molecule, two spellings
    assert (tmp_path / "m.ids.txt").read_text().split() == ["m1", "m2", "m3"]


@pytest.mark.parametrize(
    "model, name, content, extra, message",
    [
        ("dna", "e.fa", "", [], "no FASTA records"),
        (
            "dna",
            "bad.fa",
            ">ok\nACGT\n>oops\nACXT\n",
            [],
            "record 'oops': invalid character 'X' at position 3",
        ),
        ("smiles", "m.smi", "CCO a\nC1CC bad\n", [], "record 'bad': invalid SMILES 'C1CC'"),
        ("dna", "t.csv", "id,seq\nx,AC\n", ["--column", "dna"], "no column 'dna' (--column)"),
        ("dna", "x.gb", "LOCUS", [], "unknown input extension .gb"),
        ("dna", "ok.fa", ">x\nAC\n", ["--pool", "bos"], "pool 'bos' is not meaningful for a causal model"),
        ("protein", "ok.fa", ">x\nMK\n", ["--rc-average"], "needs a DNA model"),
    ],
)
def test_bad_input_is_a_one_line_error_and_writes_nothing(
    model_dirs, tmp_path, capsys, model, name, content, extra, message
):
    path = tmp_path / name
    path.write_text(content)
    out = tmp_path / "out" / "e.npy"
    assert _embed(model_dirs[model], path, "-o", out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    if "pool" not in message and "DNA" not in message:
        assert str(path) in err
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.parametrize(
    "output, extra, message",
    [
        ("e.csv", [], "unknown output extension .csv"),
        ("e.npy", ["--pool", "per-token"], "--pool per-token needs .h5 or .pt"),
    ],
)
def test_bad_output_fails_before_loading_the_model(tmp_path, capsys, output, extra, message):
    # The model directory does not exist: the output is checked first.
    assert _embed(tmp_path / "no_model", tmp_path / "in.fa", "-o", tmp_path / output, *extra) == 2
    assert message in capsys.readouterr().err


def test_console_help_and_error_in_a_fresh_interpreter(model_dirs, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "biolm.cli.main",
            "embed",
            str(model_dirs["dna"]),
            str(tmp_path / "x.fa"),
            "-o",
            "e.npy",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and result.stderr.strip().endswith("file not found")
    assert len(result.stderr.strip().splitlines()) == 1
