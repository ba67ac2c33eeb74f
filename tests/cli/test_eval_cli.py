"""End-to-end: `biolm eval probe|finetune|zeroshot` on tiny models, and their one-line errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from biolm.cli.main import main
from biolm.io.outputs import MARKER
from tests.evaluation.helpers import dms_rows, motif_rows, tiny_model_dir, write_table

SMILES = ["CCO", "CCN", "c1ccccc1O", "c1ccccc1N", "c1ccccc1C", "C1CCCCC1O", "C1CCCCC1N", "c1ccncc1O"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    return {
        "root": root,
        "protein": tiny_model_dir(root / "protein"),
        "smiles": tiny_model_dir(root / "smiles", kind="smiles"),
        "motif": write_table(root / "motif.csv", ["sequence", "label"], motif_rows(40)),
        "dms": write_table(root / "dms.csv", ["mutant", "mutated_sequence", "DMS_score"], dms_rows()),
        "mols": write_table(
            root / "mols.csv",
            ["smiles", "logS"],
            [[s, v] for s, v in zip(SMILES * 3, np.linspace(-3, 1, 24).round(3), strict=True)],
        ),
    }


def test_finetune_writes_a_report(files, tmp_path, capsys):
    out = tmp_path / "ft"
    args = ["eval", "finetune", str(files["protein"]), str(files["motif"]), "--out", str(out)]
    assert main([*args, "--seeds", "0,1", "--max-steps", "2", "--batch-size", "8", "--no-progress"]) == 0
    assert {p.name for p in out.iterdir()} == {"report.md", "metrics.json", "roc.png", MARKER}
    assert json.loads((out / MARKER).read_text())["files"] == ["metrics.json", "report.md", "roc.png"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"accuracy", "mcc", "auroc"}
    assert len(metrics["metrics"]["mcc"]["values"]) == 2
    assert metrics["split_sizes"] == {"train": 32, "valid": 4, "test": 4} and metrics["n_rows"] == 40
    report = (out / "report.md").read_text()
    assert "| accuracy |" in report and "![roc](roc.png)" in report and str(files["motif"]) in report
    assert "mcc:" in capsys.readouterr().out
    assert (out / "roc.png").read_bytes()[:4] == b"\x89PNG"


def test_probe_with_a_scaffold_split_on_smiles(files, tmp_path):
    out = tmp_path / "probe"
    args = ["eval", "probe", str(files["smiles"]), str(files["mols"]), "--out", str(out), "--no-progress"]
    assert main([*args, "--label-column", "logS", "--split", "scaffold", "--fractions", "0.5,0.25,0.25"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "regression" and set(metrics["metrics"]) == {"spearman", "rmse"}
    assert (out / "predicted_vs_true.png").is_file()


def test_zeroshot_writes_a_report(files, tmp_path):
    out = tmp_path / "zs"
    assert (
        main(
            ["eval", "zeroshot", str(files["protein"]), str(files["dms"]), "--out", str(out), "--no-progress"]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["variants"] == len(dms_rows()) and "spearman" in metrics["metrics"]
    assert (out / "score_vs_dms.png").is_file() and "variants scored" in (out / "report.md").read_text()


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_inputs_give_one_line_errors_and_keep_the_old_report(files, tmp_path, capsys):
    out = tmp_path / "kept"
    out.mkdir()
    (out / "report.md").write_text("old")  # an earlier report: its marker says biolm wrote it
    (out / MARKER).write_text(json.dumps({"kind": "report", "files": ["report.md"]}))
    model, root = str(files["protein"]), files["root"]
    probe = ["eval", "probe", model]
    nolabel = write_table(tmp_path / "nolabel.csv", ["sequence", "value"], [["MKT", 1]])
    err = _error(capsys, [*probe, str(nolabel), "--out", str(out)])
    assert err.startswith("biolm eval: error:") and "nolabel.csv: no label column" in err
    badchar = write_table(tmp_path / "bad.csv", ["sequence", "label"], [["MKT", 1], ["MK1T", 0], ["MKA", 0]])
    err = _error(capsys, [*probe, str(badchar), "--out", str(out)])
    assert "bad.csv" in err and "line 3" in err
    err = _error(capsys, [*probe, str(files["motif"]), "--out", str(out), "--split", "scaffold"])
    assert "needs SMILES" in err
    err = _error(capsys, ["eval", "zeroshot", str(root / "missing"), str(files["dms"]), "--out", str(out)])
    assert "model directory not found" in err
    assert (out / "report.md").read_text() == "old"


def test_bad_option_values_are_usage_errors(files, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(
            ["eval", "probe", str(files["protein"]), str(files["motif"]), "--out", "x", "--fractions", "0.5"]
        )
    assert exit_info.value.code == 2


def test_help_explains_each_recipe_without_importing_torch():
    code = (
        "import sys\n"
        "from biolm.cli.main import main\n"
        "for recipe in ('probe', 'finetune', 'zeroshot'):\n"
        "    try:\n"
        "        main(['eval', recipe, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for option in ("--label-column", "--split", "--seeds", "--max-epochs", "DMS_score"):
        assert option in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_finetune_from_the_probe_on_both_strands_of_dna(files, tmp_path, capsys):
    model = tiny_model_dir(tmp_path / "dna", kind="dna")
    rng = np.random.default_rng(0)
    rows = [["".join(rng.choice(list("ACGT"), 14)), i % 2] for i in range(40)]
    data = write_table(tmp_path / "dna.csv", ["sequence", "label"], rows)
    out = tmp_path / "ft"
    args = ["eval", "finetune", str(model), str(data), "--out", str(out), "--no-progress", "--max-steps", "2"]
    assert main([*args, "--head-init", "probe", "--rc-augment", "--batch-size", "8"]) == 0
    assert "head_init probe, rc_augment True" in (out / "report.md").read_text()
    capsys.readouterr()
    assert "needs the linear head" in _error(capsys, [*args, "--head-init", "probe", "--head", "mlp"])
    protein = ["eval", "finetune", str(files["protein"]), str(files["motif"]), "--out", str(tmp_path / "p")]
    assert "rc_augment needs a DNA model" in _error(capsys, [*protein, "--rc-augment", "--no-progress"])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--temperature", "-1"], "--temperature must be 0 (greedy) or a positive finite number, got -1.0"),
        (["--temperature", "nan"], "--temperature must be 0 (greedy)"),
        (["--top-p", "0"], "--top-p must be in (0, 1], got 0.0"),
        (["--top-k", "0"], "--top-k must be at least 1"),
        (["--seed", "-1"], "--seed must be at least 0"),
    ],
)
def test_generation_eval_refuses_bad_sampling_settings_before_any_report(
    files, tmp_path, capsys, flags, message
):
    # These were a ValueError traceback from the sampler, after the model had been loaded.
    out = tmp_path / "report"
    argv = ["eval", "generation", str(files["smiles"]), "--out", str(out), "--unconditional", "4", *flags]
    assert message in _error(capsys, argv)
    assert not out.exists()


def _parsed(*argv: str):
    from biolm.cli.main import build_parser

    return build_parser().parse_args(["eval", *argv])


@pytest.mark.parametrize(
    ("recipe", "positional", "options"),
    [
        ("probe", ["m", "d.csv"], ["DataOptions"]),
        ("finetune", ["m", "d.csv"], ["DataOptions", "FinetuneOptions"]),
        ("zeroshot", ["m", "d.csv"], ["BaselineOptions"]),
        ("generation", ["m"], ["ProteinGenerationOptions", "MoleculeGenerationOptions"]),
    ],
)
def test_the_cli_passes_no_default_of_its_own(recipe, positional, options):
    import biolm.evaluation.options as library
    from biolm.cli.main import _command_options, build_parser
    from biolm.cli.options import given

    args = _parsed(recipe, *positional, "--out", "x")
    flags = _command_options(build_parser(), args)
    for name in options:
        cls = getattr(library, name)
        # Every field has a flag whose dest is its name, and no flag left out holds a value of its own:
        # the options made from the command line are the dataclass's defaults.
        assert {f.name for f in dataclasses.fields(cls)} <= set(flags), name
        assert given(args, cls) == {}
        assert cls(**given(args, cls)) == cls()


def test_the_cli_passes_the_flags_given_under_the_options_names():
    from biolm.cli.options import given
    from biolm.evaluation.options import MoleculeGenerationOptions, ProteinGenerationOptions

    args = _parsed(
        "generation", "m", "--out", "x", "--samples-per-prompt", "3", "--context-sizes", "4,0",
        "--unconditional", "7", "--top-p", "0.9",
    )  # fmt: skip
    shared = {"samples_per_prompt": 3, "sizes": [0, 4], "top_p": 0.9}
    assert given(args, ProteinGenerationOptions) == shared
    assert given(args, MoleculeGenerationOptions) == {**shared, "num_unconditional": 7}


def test_generation_help_quotes_the_options_defaults(capsys):
    from biolm.evaluation.options import MoleculeGenerationOptions, ProteinGenerationOptions

    with pytest.raises(SystemExit):
        main(["eval", "generation", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    protein, molecule = ProteinGenerationOptions(), MoleculeGenerationOptions()
    assert f"samples from each prompt (default: {molecule.samples_per_prompt})" in text
    assert f"(default: {protein.held_out} per protein family, {molecule.held_out} per molecule set)" in text
    assert f"unconditional samples (default: {molecule.num_unconditional})" in text


@pytest.mark.parametrize("kind", ["protein", "smiles"])
def test_a_generation_run_without_flags_gets_the_library_defaults(files, tmp_path, monkeypatch, kind):
    from biolm.evaluation import molecule_generation, protein_generation
    from biolm.evaluation.options import MoleculeGenerationOptions, ProteinGenerationOptions

    seen = []

    def fake(model_dir, data, out_dir, options, **kwargs):
        seen.append(options)
        return {"moses": {}, "sets": {}} if kind == "smiles" else None

    monkeypatch.setattr(molecule_generation, "run_molecule_generation", fake)
    monkeypatch.setattr(protein_generation, "run_protein_generation", fake)
    monkeypatch.setattr("biolm.cli.eval_generation._print_protein", lambda result: None)
    argv = ["eval", "generation", str(files[kind]), str(files["motif"]), "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    expected = ProteinGenerationOptions() if kind == "protein" else MoleculeGenerationOptions()
    assert seen == [expected]
