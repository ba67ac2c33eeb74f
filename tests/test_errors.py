"""errors.ArgumentError: one check names its argument as the library caller or the CLI user spells it."""

from __future__ import annotations

import pytest

from biolm.cli.main import main
from biolm.errors import ArgumentError, InputError
from tests.evaluation.helpers import WILD_TYPE, dms_rows, tiny_model_dir, write_table


def test_message_names_python_arguments_and_leaves_other_braces():
    err = ArgumentError("{top_p} must be in (0, 1] for {file}, got 0", "top_p")
    assert isinstance(err, InputError)
    assert str(err) == "top_p must be in (0, 1] for {file}, got 0"
    assert (
        err.spelled(lambda name: "--" + name.replace("_", "-"))
        == "--top-p must be in (0, 1] for {file}, got 0"
    )


def test_renamed_passes_an_argument_on_under_the_callers_name():
    err = ArgumentError("no column 'x' ({smiles_column}) in t.csv", "smiles_column").renamed(
        smiles_column="column"
    )
    assert str(err) == "no column 'x' (column) in t.csv" and err.arguments == ("column",)
    assert err.spelled({"column": "--column"}.get) == "no column 'x' (--column) in t.csv"


@pytest.fixture(scope="module")
def zeroshot_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("zeroshot")
    msa = root / "family.fa"
    msa.write_text(f">wt\n{WILD_TYPE}\n>h1\n{WILD_TYPE[:-3]}AAA\n>h2\nMR{WILD_TYPE[2:]}\n")
    dms = write_table(root / "dms.csv", ["mutant", "mutated_sequence", "DMS_score"], dms_rows())
    return [str(tiny_model_dir(root / "model")), str(dms), "--out", str(root / "out"), "--context", str(msa)]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--context-tokens", "2"], "--context-tokens must be at least 3"),  # argument_flags: token_budget
        (["--weight-identity", "2"], "--weight-identity must be in (0, 1]"),  # argument_flags: identity
        (["--max-identity", "0"], "--max-identity must be in (0, 1]"),  # dest max_identity -> its flag
    ],
)
def test_the_cli_names_its_own_flags(zeroshot_files, capsys, flags, message):
    assert main(["eval", "zeroshot", *zeroshot_files, *flags, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"biolm eval: error: {message}"), err
