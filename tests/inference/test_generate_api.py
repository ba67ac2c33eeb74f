"""`biolm.generate` from Python: the same samples as `biolm generate` for the same seed, the
docstring example, and errors that name the function's arguments."""

from __future__ import annotations

import doctest

import pytest
import torch

import biolm
from biolm.cli.main import main
from biolm.inference import generate
from biolm.inference.generate import ArgumentError
from biolm.models import BioLM, ModelConfig
from biolm.models.io import save
from biolm.tokenizers import DNATokenizer, ProteinTokenizer, SmilesTokenizer

FAMILY = ">a\nMKTAYIAKQRQISFVKSHFSRQ\n>b desc\nMKTAYIAKQR-QISFVKSHF\n>c\nMKVAYIAKQRQ\n"


def _model_dir(root, name, tokenizer, **config):
    torch.manual_seed(0)
    settings = dict(vocab_size=tokenizer.vocab_size, d_model=32, n_layers=2, num_heads=2, chunk_size=8)
    return save(BioLM(ModelConfig(**{**settings, **config})).eval(), tokenizer, root / name)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "dna": _model_dir(root, "dna", DNATokenizer()),
        "protein": _model_dir(root, "protein", ProteinTokenizer(), pattern="mt"),
        "fim": _model_dir(root, "fim", ProteinTokenizer(fim_sentinels=3)),
        "smiles": _model_dir(root, "smiles", SmilesTokenizer()),
    }


@pytest.mark.parametrize(
    "kind, options",
    [
        ("dna", dict(n=4, max_new_tokens=20, prompt="ACG", seed=3)),
        ("protein", dict(n=6, max_new_tokens=30, temperature=0.8)),
        ("protein", dict(n=4, max_new_tokens=30, context="FAMILY", token_budget=64, prompt="MK", seed=2)),
        ("smiles", dict(n=10, max_new_tokens=12, top_k=5)),
        ("fim", dict(n=3, infill="MKT[?]LL[4]W", max_new_tokens=40)),
    ],
)
def test_library_call_gives_the_cli_samples(models, tmp_path, kind, options):
    family = tmp_path / "family.fasta"
    family.write_text(FAMILY)
    if "context" in options:
        options["context"] = family
    names = {"n": "num"}
    flags = [item for k, v in options.items() for item in ("--" + names.get(k, k).replace("_", "-"), str(v))]
    cli_out, lib_out = tmp_path / "cli.out", tmp_path / "lib.out"
    assert main(["generate", str(models[kind]), "-o", str(cli_out), "--no-progress", *flags]) == 0
    result = biolm.generate(models[kind], **options)
    biolm.write_samples(result, lib_out)
    assert lib_out.read_bytes() == cli_out.read_bytes()
    if kind == "dna":
        assert result.counts is None and all(len(s) == 20 for s in result.sequences)
    else:
        assert result.counts["generated"] == options["n"] - result.unfinished
    assert (result.context is not None) == ("context" in options)
    # A loaded model gives the same samples as its directory.
    again = biolm.generate(biolm.load(models[kind]), **options)
    assert again.sequences == result.sequences and again.counts == result.counts


def test_docstring_example_runs(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    examples = doctest.DocTestFinder().find(
        generate.generate, "generate", globs={"model_dir": models["protein"]}
    )
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in examples:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0 and runner.tries >= 4
    assert (tmp_path / "samples.fasta").read_text().startswith(">sample_1\n")


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(n=0), "n must be at least 1"),
        (dict(max_new_tokens=0), "max_new_tokens must be at least 1"),
        (dict(top_p=0), "top_p must be in (0, 1]"),
        (dict(min_p=2), "min_p must be in [0, 1]"),
        (dict(prompt="ACGJ"), "prompt: record 'prompt': invalid character 'J'"),
        (dict(infill="AC[?]G", prompt="A"), "infill cannot be combined with context or prompt"),
        (dict(token_budget=10), "token_budget and column apply to context"),
    ],
)
def test_errors_name_the_arguments(models, options, message):
    with pytest.raises(ArgumentError) as err:
        biolm.generate(models["dna"], **options)
    assert str(err.value).startswith(message) and "--" not in str(err.value)


def test_lazy_exports():
    assert {"generate", "write_samples"} <= set(biolm.__all__)
    assert biolm.generate is generate.generate and biolm.write_samples is generate.write_samples
