"""A new alphabet is one module: the toy RNA domain of `tests/domains/rna.py`, registered here, trains
(CLI), embeds, scores and generates through the public API, with no other file of biolm knowing it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import biolm
from biolm.cli.main import main
from biolm.domains import domain_of, get_domain, names, register, unregister
from biolm.errors import InputError
from biolm.io.fasta import read_fasta
from tests.domains.rna import RNA, RNATokenizer


@pytest.fixture(scope="module")
def rna_model(tmp_path_factory):
    """A tiny RNA model trained by `biolm train rna` on motif-rich RNAs."""
    register(RNA)
    root = tmp_path_factory.mktemp("rna")
    rng = np.random.default_rng(0)
    motifs = ["GGAUCC", "AUUUA", "CCGCGG"]
    fasta = root / "rna.fa"
    with fasta.open("w") as out:
        for j in range(60):
            seq = "".join(
                motifs[int(rng.integers(3))] + "".join(rng.choice(list("ACGU"), 2)) for _ in range(5)
            )
            out.write(f">r{j}\n{seq}\n")
    assert main(["train", "rna", f"data.path={fasta}", f"run_root={root / 'runs'}", "--no-progress"]) == 0
    yield root / "runs" / "rna" / "model"
    unregister("rna")


def test_unregistering_forgets_the_domain_and_its_tokenizer_kind():
    from biolm.tokenizers import TOKENIZER_CLASSES

    registered_before = "rna" in names()  # the module's model fixture may hold it
    register(RNA)
    assert TOKENIZER_CLASSES["rna"] is RNATokenizer
    unregister("rna")
    assert "rna" not in names() and "rna" not in TOKENIZER_CLASSES
    with pytest.raises(InputError, match="unknown domain 'rna'"):
        get_domain("rna")
    if registered_before:
        register(RNA)


def test_the_domain_is_known_by_name_and_by_its_tokenizer(rna_model):
    assert "rna" in names() and get_domain("RNA") is RNA
    model = biolm.load(rna_model)
    assert isinstance(model.tokenizer, RNATokenizer) and domain_of(model.tokenizer) is RNA


def test_embed(rna_model):
    emb = biolm.embed(rna_model, {"a": "GGAUCCAUUUA", "b": "ccgcgg"})
    assert emb.vectors.shape == (2, biolm.load(rna_model).config.d_model)
    assert np.isfinite(emb.vectors).all() and emb.ids == ["a", "b"]
    with pytest.raises(InputError, match="RNA alphabet"):
        biolm.embed(rna_model, ["ACGT"])  # T is DNA, not RNA


def test_score_equals_one_forward_pass(rna_model):
    from biolm.evaluation.incontext import nll_by_context_size

    model = biolm.load(rna_model)
    target = model.tokenizer.encode("GGAUCCAUUUA")
    nll, _ = nll_by_context_size(model, [], [target], [0])
    ids = np.concatenate([[model.tokenizer.bos_id], target])
    with torch.no_grad():
        logits = model(torch.from_numpy(ids)[None]).logits[0]
    logp = torch.log_softmax(logits.double(), dim=-1)
    expected = -sum(float(logp[j, int(t)]) for j, t in enumerate(target))
    assert nll[0, 0] == pytest.approx(expected, rel=1e-5)
    # Trained on motif-rich RNAs: a motif costs less than a run of one base the data never has.
    motif, _ = nll_by_context_size(model, [], [model.tokenizer.encode("GGAUCCGGAUCC")], [0])
    runs, _ = nll_by_context_size(model, [], [model.tokenizer.encode("NNNNNNNNNNNN")], [0])
    assert motif[0, 0] < runs[0, 0]


def test_generate_through_the_api_and_the_cli(rna_model, tmp_path):
    result = biolm.generate(rna_model, n=4, seed=1)
    assert result.domain == "rna" and result.counts["generated"] == 4
    # The default cleaner leaves out the samples that ended at once (a FASTA record cannot be empty).
    assert len(result.sequences) == result.counts["non_empty"] == sum(bool(s) for s in result.raw)
    assert all(set(s) <= set("ACGUN") for s in result.sequences)
    assert result.max_new_tokens == RNA.max_new_tokens
    path = biolm.write_samples(result, tmp_path / "samples.fasta")
    assert [r.sequence for r in read_fasta(path)] == result.sequences
    out = tmp_path / "cli.fasta"
    assert main(["generate", str(rna_model), "-o", str(out), "-n", "3", "--no-progress"]) == 0
    assert 1 <= len(list(read_fasta(out))) <= 3


def test_what_the_domain_cannot_do_is_refused_in_its_words(rna_model, tmp_path):
    context = tmp_path / "set.fa"
    context.write_text(">a\nACGU\n")
    with pytest.raises(InputError, match="needs a protein or SMILES model, not a RNA model"):
        biolm.generate(rna_model, n=1, context=context)
