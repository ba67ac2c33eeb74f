"""`biolm eval generation` end to end on tiny models: the protein and molecule reports, their numbers,
seeding, and one-line errors through the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from biolm.cli.main import main
from biolm.evaluation.incontext import split_members
from biolm.evaluation.molecule_generation import run_molecule_generation
from biolm.evaluation.options import MoleculeGenerationOptions, ProteinGenerationOptions
from biolm.evaluation.protein_generation import run_protein_generation
from tests.evaluation.helpers import tiny_model_dir
from tests.evaluation.test_molecule_metrics import MOLECULES
from tests.evaluation.test_protein_metrics import _mutants, _write_hmm

pytest.importorskip("pyhmmer")


@pytest.fixture(scope="module")
def families(tmp_path_factory) -> Path:
    """Two family files (one with an HMM beside it) in a directory, and an HMM directory."""
    root = tmp_path_factory.mktemp("families")
    (root / "fams").mkdir()
    (root / "hmms").mkdir()
    for name, seed in (("TOY1_seed", 3), ("TOY2", 4)):
        with open(root / "fams" / f"{name}.fasta", "w") as handle:
            for i, seq in enumerate(_mutants(12, 0.15, seed)):
                handle.write(f">{name}_{i}\n{seq[: 20 + i]}\n")
    _write_hmm(root / "hmms" / "TOY1.hmm", (20.0, 20.0))
    return root


def _run_protein(model_dir, families, out, sizes=(0, 1, 4), **options):
    options = ProteinGenerationOptions(
        hmm_dir=families / "hmms",
        sizes=sizes,
        held_out=3,
        draws=1,
        num_samples=4,
        sample_context=3,
        samples_per_prompt=2,
        max_new_tokens=24,
        **options,
    )
    return run_protein_generation(model_dir, [families / "fams"], out, options, progress=False)


def _assert_no_project_bookkeeping(report: Path) -> None:
    """A library report speaks of its data and model, never of the project's issues."""
    for name in ("report.md", "metrics.json"):
        assert "issue" not in (report / name).read_text().lower(), name


def test_protein_report(tmp_path, families):
    model_dir = tiny_model_dir(tmp_path / "model", "protein")
    result = _run_protein(model_dir, families, tmp_path / "report")
    report = tmp_path / "report"
    text = (report / "report.md").read_text()
    assert "## In-context gain" in text and "## Samples" in text and "TOY1_seed" in text
    assert "own cutoff: gathering for 1 family (" in text  # TOY2 has no HMM
    _assert_no_project_bookkeeping(report)
    for plot in ("gain_curve", "identity_vs_hmm", "lengths"):
        assert (report / f"{plot}.png").stat().st_size > 0
    with open(report / "samples.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 8 and {r["family"] for r in rows} == {"TOY1_seed", "TOY2"}
    # Only the family with an HMM has hits measured; the other has none.
    assert {r["hmm_hit"] for r in rows if r["family"] == "TOY2"} == {""}
    assert {r["hmm_hit"] for r in rows if r["family"] == "TOY1_seed"} <= {"0", "1"}
    assert all(len(r["sequence"]) <= 24 for r in rows)
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["families"]["TOY1_seed"]["samples"] == 4
    assert metrics["gain_curve"]["sizes"] == [0, 1, 4]
    # The held-out natural members are family members: the family's own HMM finds them.
    assert result["families"]["TOY1_seed"]["natural_hmm_hit"] == 1.0
    assert result["families"]["TOY2"]["hmm_hit"] is None


def test_protein_samples_are_seeded_and_prompts_never_hold_held_out_members(tmp_path, families):
    model_dir = tiny_model_dir(tmp_path / "model", "protein")
    _run_protein(model_dir, families, tmp_path / "a", sizes=[0])
    _run_protein(model_dir, families, tmp_path / "b", sizes=[0])
    _run_protein(model_dir, families, tmp_path / "c", sizes=[0], seed=1)
    a, b, c = ((tmp_path / x / "samples.tsv").read_text() for x in "abc")
    assert a == b and a != c
    # Each sample's nearest context member comes from the pool, never from the held-out members.
    from biolm.evaluation.protein_families import read_family
    from biolm.tokenizers import get_tokenizer

    family = read_family(families / "fams" / "TOY1_seed.fasta", get_tokenizer("protein"))
    held, _ = split_members(family.name, len(family.ids), 3, 0)
    held_out = {family.sequences[i] for i in held}
    with open(tmp_path / "a" / "samples.tsv") as handle:
        nearest = [r["nearest_context_member"] for r in csv.DictReader(handle, delimiter="\t")]
    assert nearest and not held_out & set(nearest)


def test_molecule_report(tmp_path):
    pytest.importorskip("fcd_torch")
    model_dir = tiny_model_dir(tmp_path / "model", "smiles")
    sets = tmp_path / "sets"
    sets.mkdir()
    (sets / "setA.smi").write_text("\n".join(MOLECULES) + "\n")
    (sets / "setB.smi").write_text("\n".join(MOLECULES[::-1][:8] + ["CCCCO", "CCCCN"]) + "\n")
    train = tmp_path / "train.smi"
    train.write_text("CCO\nCCN\n")
    options = MoleculeGenerationOptions(
        num_unconditional=6,
        train=train,
        test=sets / "setA.smi",
        sizes=[0, 2],
        held_out=3,
        draws=1,
        num_samples=4,
        sample_context=4,
        samples_per_prompt=2,
        max_new_tokens=16,
    )
    result = run_molecule_generation(model_dir, [sets], tmp_path / "report", options, progress=False)
    report = tmp_path / "report"
    assert (report / "unconditional.smi").read_text().count("\n") == 6
    assert (report / "conditioned_setA.smi").read_text().count("\n") == 4
    text = (report / "report.md").read_text()
    assert "MOSES" in text and "Set-conditioned" in text and "setB" in text
    _assert_no_project_bookkeeping(report)
    assert set(result["sets"]) == {"setA", "setB"}
    assert result["sets"]["setA"]["held_out"] == 3 and result["sets"]["setA"]["samples"] == 4
    # The pool's molecules are real set members: their nearest held-out neighbour is defined.
    assert 0 < result["sets"]["setA"]["nn_similarity_pool"] <= 1
    assert {"valid", "unique@1k", "novelty", "IntDiv1"} <= set(result["moses"])
    assert np.isfinite(result["gain_curve"].nll).all()


def test_molecule_prompts_take_pool_members_while_they_fit_the_token_budget():
    from biolm.evaluation.molecule_generation import MoleculeSetData, choose_members

    ids = [np.zeros(n, dtype=np.int64) for n in (3, 3, 3, 3)]
    molecules = MoleculeSetData("s", Path("s.smi"), ["C"] * 4, ids, 0)
    pool = np.array([1, 2, 3])
    # <bos> + 2 members of 3 tokens and a <sep> each = 9 tokens; a third would need 13.
    chosen = choose_members(np.random.default_rng(0), molecules, pool, sample_context=8, token_budget=12)
    assert len(chosen) == 2 and set(chosen) <= {1, 2, 3}
    assert len(choose_members(np.random.default_rng(0), molecules, pool, 1, 100)) == 1
    assert choose_members(np.random.default_rng(0), molecules, pool, 8, 4) == []


def test_cli_protein_run_and_one_line_errors(tmp_path, families, capsys):
    model_dir = tiny_model_dir(tmp_path / "model", "protein")
    dna_dir = tiny_model_dir(tmp_path / "dna", "dna")
    out = tmp_path / "rep"
    args = [
        "eval", "generation", str(model_dir), str(families / "fams"), "--hmm-dir", str(families / "hmms"),
        "--out", str(out), "--context-sizes", "0,2", "--held-out", "3", "-n", "2",
        "--samples-per-prompt", "2", "--max-new-tokens", "16", "--no-progress",
    ]  # fmt: skip
    assert main(args) == 0
    assert "pooled perplexity by context size: k=0:" in capsys.readouterr().out
    assert (out / "report.md").is_file()
    for bad, message in [
        ((str(model_dir), "--out", "x"), "needs family files"),
        ((str(dna_dir), str(families / "fams"), "--out", "x"), "not DNA"),
        ((str(model_dir), str(tmp_path / "missing.fasta"), "--out", "x"), "missing.fasta: file not found"),
        (
            (str(model_dir), str(families / "fams"), "--out", "x", "--draws", "0"),
            "--draws must be at least 1",
        ),
    ]:
        assert main(["eval", "generation", *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit):
        main(["eval", "generation", str(model_dir), "--out", "x", "--context-sizes", "a,b"])
    assert "comma-separated integers" in capsys.readouterr().err
