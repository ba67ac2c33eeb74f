"""Homolog-conditioned zero-shot scores: the cached context state against one forward pass over the
whole prompt, seeded replicates, the fill-in-the-middle marginal, and one-line errors on bad MSAs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from biolm.cli.main import main
from biolm.data.layout import DEFAULT_LAYOUT
from biolm.errors import InputError
from biolm.evaluation.options import ContextOptions
from biolm.evaluation.zeroshot_context import (
    draw_context,
    prefill,
    read_homologs,
    score_scan_in_context,
)
from biolm.io.dms import read_scan
from biolm.models import BioLM, ModelConfig
from biolm.models.io import load, save
from biolm.tokenizers import get_tokenizer
from biolm.tokenizers.base import SEP_ID
from tests.evaluation.helpers import WILD_TYPE, dms_rows, tiny_model_dir, write_table

DMS_HEADER = ["mutant", "mutated_sequence", "DMS_score"]
LETTERS = "ACDEFGHIKLMNPQRSTVWY"


def prompt_ids(members):
    """(ids, positions) of the prompt that opens the member after `members`."""
    prompt = DEFAULT_LAYOUT.prompt(members)
    return prompt.ids, prompt.positions


def homolog(seed: int, changes: int = 8) -> str:
    """The wild type with `changes` random substitutions (an aligned row of the same width)."""
    rng = np.random.default_rng(seed)
    seq = list(WILD_TYPE)
    for pos in rng.choice(len(seq), changes, replace=False):
        seq[pos] = LETTERS[int(rng.integers(len(LETTERS)))]
    return "".join(seq)


def write_msa(path, rows: list[tuple[str, str]]):
    path.write_text("".join(f">{name}\n{row}\n" for name, row in rows))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctx")
    rows = [("query", WILD_TYPE), ("copy", WILD_TYPE)] + [(f"h{i}", homolog(i)) for i in range(6)]
    # a homolog with a gap: it enters the context without it
    rows.append(("gapped", WILD_TYPE[:10] + "--" + homolog(9)[12:]))
    return {
        "root": root,
        "scan": write_table(root / "scan.csv", DMS_HEADER, dms_rows()),
        "msa": write_msa(root / "msa.a3m", rows),
        "model": tiny_model_dir(root / "model", seed=3),
    }


def _member_log_likelihood(model, prompt: tuple[np.ndarray, np.ndarray], sequence: str) -> float:
    """log p(sequence, <sep> | prompt) from one forward pass over prompt + sequence + <sep>."""
    ids, positions = prompt
    member = model.tokenizer.encode(sequence)
    full = np.concatenate([ids, member, [SEP_ID]])
    where = np.concatenate([positions, np.arange(1, len(member) + 2)])
    with torch.no_grad():
        out = model(torch.from_numpy(full)[None], position_ids=torch.from_numpy(where)[None])
    logp = torch.log_softmax(out.logits[0].double(), dim=-1)
    start = len(ids)
    return float(sum(logp[t - 1, full[t]] for t in range(start, len(full))))


def test_cached_context_equals_one_pass_over_context_and_variant(files):
    model = load(files["model"])
    scan = read_scan(files["scan"])
    # A prefill of 7 tokens at a time: the context crosses several pieces and kernel chunks (size 8).
    options = ContextOptions(files["msa"], token_budget=4096, prefill_tokens=7)
    scored = score_scan_in_context(model, scan, options)
    homologs = read_homologs(options, scan, model.tokenizer)
    context = draw_context(homologs, options, 0)
    assert len(context) == len(homologs.ids) == 7  # the two copies of the wild type are left out
    prompt = prompt_ids(context)
    wild = _member_log_likelihood(model, prompt, WILD_TYPE)
    expected = [_member_log_likelihood(model, prompt, s) - wild for s in scan.sequences]
    np.testing.assert_allclose(scored.scores, expected, rtol=1e-4, atol=1e-4)
    assert np.ptp(scored.scores) > 1e-3
    assert scored.members == [7] and scored.tokens == [len(prompt[0])]


def test_prefill_in_pieces_gives_the_state_of_one_pass(files):
    model = load(files["model"])
    members = [model.tokenizer.encode(homolog(i)) for i in range(4)]
    whole = prefill(model, members, piece_tokens=10_000)
    pieces = prefill(model, members, piece_tokens=5)
    torch.testing.assert_close(pieces[1], whole[1], rtol=1e-4, atol=1e-5)
    for a, b in zip(whole[0], pieces[0], strict=True):
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_replicates_are_reproducible_from_the_seed(files):
    model = load(files["model"])
    scan = read_scan(files["scan"])
    # A budget for about three homologs, so that different seeds draw different contexts.
    small = dict(token_budget=3 * (len(WILD_TYPE) + 1) + 1)
    three = score_scan_in_context(model, scan, ContextOptions(files["msa"], replicates=3, seed=5, **small))
    again = score_scan_in_context(model, scan, ContextOptions(files["msa"], replicates=3, seed=5, **small))
    np.testing.assert_array_equal(three.replicates, again.replicates)
    assert three.replicates.shape == (3, len(scan.mutants))
    singles = [
        score_scan_in_context(model, scan, ContextOptions(files["msa"], seed=s, **small)).scores
        for s in (5, 6, 7)
    ]
    np.testing.assert_allclose(three.replicates, np.stack(singles))
    np.testing.assert_allclose(three.scores, np.mean(singles, axis=0))
    assert not np.allclose(singles[0], singles[1])  # another seed, other homologs
    assert three.members == [3, 3, 3]


def test_max_identity_leaves_out_near_copies(files, tmp_path):
    model = load(files["model"])
    scan = read_scan(files["scan"])
    near = homolog(20, changes=1)  # 1 of 33 residues changed: 97 % identical
    msa = write_msa(tmp_path / "near.a3m", [("query", WILD_TYPE), ("near", near), ("far", homolog(21))])
    every = read_homologs(ContextOptions(msa), scan, model.tokenizer)
    far = read_homologs(ContextOptions(msa, max_identity=0.95), scan, model.tokenizer)
    assert len(every.ids) == 2 and len(far.ids) == 1
    assert far.dropped == {"copies of the wild type": 1, "at least 95% identical to the wild type": 1}


def _fim_model(path):
    tokenizer = get_tokenizer("protein", fim_sentinels=2)
    torch.manual_seed(4)
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, d_model=16, n_layers=2, num_heads=2, chunk_size=8, backend="torch"
    )
    return load(save(BioLM(config), tokenizer, path))


def test_fim_score_is_the_marginal_at_the_masked_position(files, tmp_path):
    model = _fim_model(tmp_path / "fim")
    scan = read_scan(files["scan"])
    options = ContextOptions(files["msa"], score="fim", token_budget=4096)
    scored = score_scan_in_context(model, scan, options)
    prompt = prompt_ids(draw_context(read_homologs(options, scan, model.tokenizer), options, 0))
    tok, sentinel = model.tokenizer, model.tokenizer.sentinel_ids[0]
    wt = tok.encode(WILD_TYPE)

    def log_probs(pos: int) -> torch.Tensor:
        member = np.concatenate([wt[: pos - 1], [sentinel], wt[pos:], [sentinel]])
        ids = np.concatenate([prompt[0], member])
        where = np.concatenate([prompt[1], np.arange(1, len(member) + 1)])
        with torch.no_grad():
            out = model(torch.from_numpy(ids)[None], position_ids=torch.from_numpy(where)[None])
        return torch.log_softmax(out.logits[0, -1].double(), dim=-1)

    expected = []
    for muts in scan.mutations:
        total = 0.0
        for w, pos, m in muts:
            logp = log_probs(pos)
            total += float(logp[tok.encode(m)[0]] - logp[tok.encode(w)[0]])
        expected.append(total)
    np.testing.assert_allclose(scored.scores, expected, rtol=1e-4, atol=1e-4)
    assert "fill-in-the-middle" in scored.method


def test_fim_score_needs_a_fim_model(files):
    model = load(files["model"])
    with pytest.raises(InputError, match="fill-in-the-middle"):
        score_scan_in_context(model, read_scan(files["scan"]), ContextOptions(files["msa"], score="fim"))


def test_context_needs_a_causal_model(files, tmp_path):
    model = load(tiny_model_dir(tmp_path / "bi", bidirectional=True))
    with pytest.raises(InputError, match="causal model"):
        score_scan_in_context(model, read_scan(files["scan"]), ContextOptions(files["msa"]))


def test_report_has_the_site_independent_model_and_the_ensemble(files, tmp_path):
    out = tmp_path / "report"
    argv = ["eval", "zeroshot", str(files["model"]), str(files["scan"]), "--out", str(out), "--no-progress"]
    assert (
        main([*argv, "--context", str(files["msa"]), "--replicates", "2", "--ensemble-weight", "0.25"]) == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    for name in ("spearman", "site_independent_spearman", "ensemble_spearman", "replicate_spearman"):
        assert name in metrics, name
    table = np.genfromtxt(out / "scores.tsv", delimiter="\t", names=True, dtype=None, encoding=None)
    assert list(table.dtype.names) == ["mutant", "DMS_score", "model", "site_independent", "ensemble"]
    np.testing.assert_allclose(
        table["ensemble"], 0.25 * table["model"] + 0.75 * table["site_independent"], rtol=1e-4, atol=1e-5
    )
    report = (out / "report.md").read_text()
    assert (
        "0.25 x model + 0.75 x site-independent" in report and "left out 2 copies of the wild type" in report
    )


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_msas_give_one_line_errors_naming_file_and_record(files, tmp_path, capsys):
    base = ["eval", "zeroshot", str(files["model"]), str(files["scan"]), "--out", str(tmp_path / "r")]
    other = write_msa(tmp_path / "other.a3m", [("otherquery", "G" + WILD_TYPE[1:]), ("h", homolog(1))])
    err = _one_line_error(capsys, [*base, "--context", str(other)])
    assert "other.a3m" in err and "otherquery" in err
    alone = write_msa(tmp_path / "alone.a3m", [("query", WILD_TYPE), ("copy", WILD_TYPE)])
    err = _one_line_error(capsys, [*base, "--context", str(alone)])
    assert "alone.a3m" in err and "no usable homologs" in err
    ragged = write_msa(tmp_path / "ragged.fasta", [("query", WILD_TYPE), ("short", WILD_TYPE[:-3])])
    err = _one_line_error(capsys, [*base, "--context", str(ragged)])
    assert "ragged.fasta" in err and "short" in err
    garbage = tmp_path / "garbage.a3m"
    garbage.write_text("this is not an alignment\n")
    err = _one_line_error(capsys, [*base, "--context", str(garbage)])
    assert "garbage.a3m" in err
    assert not (tmp_path / "r").exists()  # nothing written on failure
    err = _one_line_error(capsys, [*base, "--max-identity", "0.9"])
    assert "--context" in err
