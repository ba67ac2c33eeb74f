"""Reading labelled tables: column and task detection, split columns, one-line errors."""

from __future__ import annotations

import gzip

import pytest

from biolm.errors import InputError
from biolm.io.labelled import EvalDataWarning, read_labelled
from biolm.io.smiles import ChemDataWarning
from tests.evaluation.helpers import write_table


def test_detects_columns_and_classification(tmp_path):
    path = write_table(tmp_path / "d.tsv", ["id", "Seq", "Label"], [[1, "ACGT", "b"], [2, "AAAA", "a"]], "\t")
    data = read_labelled(path)
    assert data.sequences == ["ACGT", "AAAA"] and data.task == "classification"
    assert data.classes == ["a", "b"] and data.labels.tolist() == [1, 0]
    assert data.lines == [2, 3] and data.split is None


def test_integer_classes_sort_numerically_and_many_values_are_regression(tmp_path):
    rows = [[f"A{i}", v] for i, v in enumerate([10, 2, 2, 10])]
    data = read_labelled(write_table(tmp_path / "a.csv", ["sequence", "y"], rows))
    assert data.task == "classification" and data.classes == ["2", "10"]
    rows = [["A", i] for i in range(20)]
    assert read_labelled(write_table(tmp_path / "b.csv", ["sequence", "y"], rows)).task == "regression"
    rows = [["A", 0.5], ["C", 1.0]]
    assert read_labelled(write_table(tmp_path / "c.csv", ["sequence", "y"], rows)).task == "regression"
    forced = read_labelled(tmp_path / "a.csv", task="regression")
    assert forced.task == "regression" and forced.labels.tolist() == [10.0, 2.0, 2.0, 10.0]


def test_flip_split_columns(tmp_path):
    path = tmp_path / "flip.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("sequence,target,set,validation\nAC,1.5,train,\nCA,2.5,train,True\nAA,0.1,test,\n")
    data = read_labelled(path)
    assert data.split.tolist() == ["train", "valid", "test"]
    assert data.task == "regression" and data.columns["split"] == "set"
    assert read_labelled(path, split_column="none").split is None


def test_smiles_are_canonicalised_and_invalid_ones_skipped_with_a_warning(tmp_path):
    rows = [["OCC", 1], ["not_a_smiles", 0], ["c1ccccc1", 0], ["C(", 1]]
    path = write_table(tmp_path / "m.csv", ["smiles", "p_np"], rows)
    with pytest.warns(ChemDataWarning, match=r"m\.csv: skipped 2 of 4 .*line 3.*line 5"):
        data = read_labelled(path, label_column="p_np")
    assert data.is_smiles and data.sequences == ["CCO", "c1ccccc1"] and data.lines == [2, 4]


def test_empty_labels_are_skipped_with_a_warning(tmp_path):
    path = write_table(tmp_path / "t.csv", ["sequence", "label"], [["AC", 1], ["CA", ""], ["GG", 0]])
    with pytest.warns(EvalDataWarning, match=r"t\.csv: skipped 1 of 3 rows with an empty label \(lines 3"):
        data = read_labelled(path)
    assert data.sequences == ["AC", "GG"]


@pytest.mark.parametrize(
    ("header", "rows", "kwargs", "message"),
    [
        (
            ["sequence", "other"],
            [["AC", 1]],
            {},
            r"bad\.csv: no label column found among .*name it with label_column",
        ),
        (["sequence", "y"], [["AC", 1]], {"label_column": "z"}, r"bad\.csv: no column 'z' \(label_column\)"),
        (["name", "y"], [["AC", 1]], {}, r"bad\.csv: no sequence column found"),
        (["sequence", "y"], [], {}, r"bad\.csv: no data rows"),
        (
            ["sequence", "y"],
            [["AC", "x"], ["CA", 2.5]],
            {"task": "regression"},
            r"line 2: label 'x' is not a finite",
        ),
        (["sequence", "y"], [["AC", 1.5], ["CA", "inf"]], {}, r"line 3: label 'inf' is not a finite"),
        (["sequence", "y"], [["AC", 1], ["CA", 1]], {}, r"every label is '1'"),
        (
            ["sequence", "y", "split"],
            [["AC", 1, "train"], ["CA", 0, "holdout"]],
            {},
            r"line 3: split 'holdout'",
        ),
        (["sequence", "y"], [["AC", 1], ["", 0]], {}, r"bad\.csv: line 3: empty sequence"),
    ],
)
def test_errors_name_the_file_and_line(tmp_path, header, rows, kwargs, message):
    path = write_table(tmp_path / "bad.csv", header, rows)
    with pytest.raises(InputError, match=message):
        read_labelled(path, **kwargs)


def test_fasta_with_labels_in_the_headers(tmp_path):
    path = tmp_path / "l.fa"
    path.write_text(
        ">a label=pos split=train\nACG\nTT\n>b label=neg split=test extra\nGGA\n>c split=valid\nAA\n"
    )
    with pytest.warns(EvalDataWarning, match="lines 6"):
        data = read_labelled(path)
    assert data.sequences == ["ACGTT", "GGA"] and data.classes == ["neg", "pos"]
    assert (
        data.labels.tolist() == [1, 0] and data.lines == [1, 4] and data.split.tolist() == ["train", "test"]
    )
    path.write_text("ACGT\n>a label=1\nAC\n")
    with pytest.raises(InputError, match=r"l\.fa: line 1: not FASTA \(text before the first '>' header"):
        read_labelled(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match=r"empty\.csv: empty file"):
        read_labelled(tmp_path / "empty.csv")
    with pytest.raises(InputError, match=r"nope\.csv: file not found"):
        read_labelled(tmp_path / "nope.csv")
