"""`biolm generate` end to end on tiny random models saved to disk: every domain, the aliases, context,
infilling, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from biolm.cli.main import main
from biolm.models import BioLM, ModelConfig
from biolm.models.config import DNA_COMPLEMENT
from biolm.models.io import save
from biolm.tokenizers import DNATokenizer, ProteinTokenizer, SmilesTokenizer

FAMILY = ">a\nMKTAYIAKQRQISFVKSHFSRQ\n>b desc\nMKTAYIAKQR-QISFVKSHF\n>c\nMKVAYIAKQRQ\n"


def _model_dir(root, name, tokenizer, **config):
    torch.manual_seed(0)
    settings = dict(vocab_size=tokenizer.vocab_size, d_model=32, n_layers=2, num_heads=2, chunk_size=8)
    model = BioLM(ModelConfig(**{**settings, **config})).eval()
    path = root / name
    save(model, tokenizer, path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "dna": _model_dir(root, "dna", DNATokenizer()),
        "protein": _model_dir(root, "protein", ProteinTokenizer(), pattern="mt"),
        "fim": _model_dir(root, "fim", ProteinTokenizer(fim_sentinels=3)),
        "smiles": _model_dir(root, "smiles", SmilesTokenizer()),
        "bidirectional": _model_dir(root, "bidi", DNATokenizer(), bidirectional=True),
        "rc": _model_dir(root, "rc", DNATokenizer(), rc_equivariant=True, complement=DNA_COMPLEMENT),
    }


def generate(*args) -> int:
    return main(["generate", *map(str, args), "--no-progress"])


def fasta(path) -> list[str]:
    lines = path.read_text().splitlines()
    assert lines[0::2] == [f">sample_{i}" for i in range(1, len(lines) // 2 + 1)]
    return lines[1::2]


def test_dna_length_alias_batch_size_and_seed(models, tmp_path):
    out = [tmp_path / f"{i}.fa" for i in range(4)]
    assert generate(models["dna"], "-n", 5, "--max-new-tokens", 30, "-o", out[0]) == 0
    assert generate(models["dna"], "-n", 5, "--length", 30, "--batch-size", 2, "-o", out[1]) == 0
    assert generate(models["dna"], "-n", 5, "--length", 30, "--seed", 1, "-o", out[2]) == 0
    assert generate(models["dna"], "-n", 5, "--length", 30, "--min-p", 0.2, "-o", out[3]) == 0
    seqs = fasta(out[0])
    assert len(seqs) == 5 and all(len(s) == 30 and set(s) <= set("ACGTN") for s in seqs)
    assert out[1].read_text() == out[0].read_text()
    assert out[2].read_text() != out[0].read_text() != out[3].read_text()


def test_protein_and_smiles_unconditional(models, tmp_path, capsys):
    out = tmp_path / "p.fa"
    assert generate(models["protein"], "-n", 8, "--max-new-tokens", 40, "--temperature", 0.8, "-o", out) == 0
    printed = capsys.readouterr().out
    assert "8 generated" in printed and "non-empty" in printed and "unique" in printed
    seqs = fasta(out)
    assert 0 < len(seqs) <= 8 and all(0 < len(s) <= 40 for s in seqs)
    smi = tmp_path / "m.smi"
    assert generate(models["smiles"], "-n", 20, "--max-new-tokens", 12, "-o", smi) == 0
    printed = capsys.readouterr().out
    assert "20 generated" in printed and "valid" in printed and f"to {smi}" in printed
    assert smi.exists()


def test_protein_context_and_infill(models, tmp_path, capsys):
    family = tmp_path / "fam.fa"
    family.write_text(FAMILY)
    out = tmp_path / "ctx.fa"
    args = ["-n", 4, "--context", family, "--token-budget", 64, "--max-new-tokens", 30, "-o", out]
    assert generate(models["protein"], *args) == 0
    printed = capsys.readouterr().out
    assert f"context {family}: 3 of 3 members" in printed and "novel" in printed
    assert len(fasta(out)) >= 1
    infilled = tmp_path / "fill.fa"
    assert generate(models["fim"], "-n", 3, "--infill", "MKT[?]LL[4]W", "-o", infilled) == 0
    for seq in fasta(infilled):
        assert seq.startswith("MKT") and seq.endswith("W") and seq[-7:-5] == "LL"


def test_molecule_context(models, tmp_path, capsys):
    mols = tmp_path / "set.smi"
    mols.write_text("CCO\nc1ccccc1\nCC(=O)O\nnot_a_smiles\n")
    out = tmp_path / "new.smi"
    with pytest.warns(UserWarning, match="skipped 1 of 4 molecules"):
        assert generate(models["smiles"], "-n", 5, "--context", mols, "--max-new-tokens", 10, "-o", out) == 0
    printed = capsys.readouterr().out
    assert f"context {mols}: 3 of 3 molecules" in printed and "novel" in printed


@pytest.mark.parametrize(
    "model, extra, message",
    [
        ("dna", ["--min-p", "2"], "--min-p must be in [0, 1]"),
        ("dna", ["--top-p", "0"], "--top-p must be in (0, 1]"),
        ("dna", ["--length", "0"], "--max-new-tokens must be at least 1"),
        ("dna", ["--prompt", "ACGJ"], "--prompt: record 'prompt': invalid character 'J'"),
        ("dna", ["--token-budget", "10"], "--token-budget and --column apply to --context"),
        ("bidirectional", [], "cannot generate from a bidirectional model"),
        ("rc", [], "cannot generate from a reverse-complement equivariant model"),
        ("protein", ["--infill", "MKT[?]W"], "no <fim_k> sentinels"),
        ("fim", ["--infill", "MKT[?W"], "unclosed '['"),
        ("fim", ["--infill", "MK[?]W", "--prompt", "M"], "--infill cannot be combined"),
        ("dna", ["--context", "CONTEXT"], "needs a protein or SMILES model"),
        ("protein", ["--context", "MISSING"], "file not found"),
        ("protein", ["--context", "BAD"], "invalid character 'J'"),
        ("protein", ["--context", "CONTEXT", "--token-budget", "5"], "no usable protein"),
        ("smiles", ["--context", "CONTEXT"], "unknown molecule file extension"),
        ("smiles", ["--context", "TABLE"], "--column"),
        ("smiles", ["--context", "TABLE", "--column", "nope"], "nope"),
    ],
)
def test_errors_are_one_line(models, tmp_path, capsys, model, extra, message):
    family = tmp_path / "fam.fa"
    family.write_text(FAMILY)
    bad = tmp_path / "bad.fa"
    bad.write_text(">ok\nMKT\n>broken\nMKJT\n")
    table = tmp_path / "mols.csv"
    table.write_text("name,value\na,1\n")
    files = {"CONTEXT": family, "MISSING": tmp_path / "missing.fa", "BAD": bad, "TABLE": table}
    named = [files[item] for item in extra if item in files]
    extra = [str(files.get(item, item)) for item in extra]
    out = tmp_path / "out.fa"
    assert generate(models[model], "-n", 2, "--length", 5, *extra, "-o", out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("biolm generate: error: ") and len(err.splitlines()) == 1
    assert message in err
    for path in named:  # a context file's error names the file
        assert str(path) in err
    assert not out.exists()


def test_a_bad_flag_is_refused_before_torch_is_imported(tmp_path):
    # The checks live in biolm.inference.arguments (no torch), shared with biolm.generate.
    script = (
        "import sys; from biolm.cli.main import main; "
        f"code = main(['generate', {str(tmp_path)!r}, '-o', 'x.fa', '--top-p', '0']); "
        "print(code, 'torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["2", "False"], proc.stdout + proc.stderr
    assert "--top-p must be in (0, 1], got 0.0" in proc.stderr
