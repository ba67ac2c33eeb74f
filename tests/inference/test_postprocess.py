from __future__ import annotations

import gzip
import warnings

import pytest

from biolm.data.chem import read_molecules
from biolm.domains.chem import clean_molecules
from biolm.domains.protein import clean_proteins
from biolm.inference.postprocess import format_counts, write_fasta, write_smiles
from biolm.io.fasta import read_fasta


def test_clean_molecules_counts_each_stage():
    generated = [
        "OCC",  # ethanol, written backwards
        "CCO",  # ethanol again: a duplicate in another spelling
        "C1=CC=CC=C1",  # benzene, Kekulé form
        "c1ccccc1",  # benzene, aromatic form: a duplicate
        "C1CC",  # unclosed ring: invalid
        "",  # an empty sample (the model ended the member at once): invalid
        "N#N",
        "Xx",  # not SMILES
    ]
    kept, counts = clean_molecules(generated, reference=["C(C)O", "not a smiles"])
    assert kept == ["CCO", "c1ccccc1", "N#N"]
    assert counts == {"generated": 8, "valid": 5, "unique": 3, "novel": 2}


def test_clean_molecules_without_reference_and_dropping_known():
    kept, counts = clean_molecules(["CCO", "CCN"])
    assert kept == ["CCO", "CCN"] and counts == {"generated": 2, "valid": 2, "unique": 2}
    kept, counts = clean_molecules(["CCO", "CCN"], reference=["OCC"], drop_known=True)
    assert kept == ["CCN"] and counts["novel"] == 1


def test_clean_proteins():
    samples = ["MKV", "", "mkv", "LLW", "  ", "ACD"]
    kept, counts = clean_proteins(samples, reference=["ACD"])
    assert kept == ["MKV", "LLW", "ACD"]
    assert counts == {"generated": 6, "non_empty": 4, "unique": 3, "novel": 2}
    kept, _ = clean_proteins(samples, drop_duplicates=False)
    assert kept == ["MKV", "MKV", "LLW", "ACD"]
    kept, _ = clean_proteins(samples, reference=["ACD"], drop_known=True)
    assert kept == ["MKV", "LLW"]


def test_format_counts():
    line = format_counts({"generated": 1000, "valid": 900, "unique": 450, "novel": 0})
    assert line == "1,000 generated, 900 valid (90.0%), 450 unique (50.0%), 0 novel (0.0%)"
    assert format_counts({"generated": 0, "valid": 0}) == "0 generated, 0 valid"


def test_write_fasta_reads_back(tmp_path):
    path = write_fasta(tmp_path / "out" / "new.fasta", [("sample_1 t=1.0", "MKV"), ("sample_2", "")])
    assert path.read_text() == ">sample_1 t=1.0\nMKV\n>sample_2\n\n"
    write_fasta(tmp_path / "w.fa.gz", {"a": "ACDEFG"}, width=4)
    with gzip.open(tmp_path / "w.fa.gz", "rt") as handle:
        assert handle.read() == ">a\nACDE\nFG\n"
    assert [(r.name, r.header, r.sequence) for r in read_fasta(tmp_path / "w.fa.gz")] == [
        ("a", "a", "ACDEFG")
    ]


def test_write_smiles_reads_back(tmp_path):
    path = write_smiles(tmp_path / "new.smi", ["CCO", "c1ccccc1"], names=["gen_1", "gen_2"])
    assert path.read_text() == "CCO\tgen_1\nc1ccccc1\tgen_2\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may be skipped as invalid
        assert read_molecules(path).smiles == ["CCO", "c1ccccc1"]


@pytest.mark.parametrize(
    "call",
    [
        lambda p: write_fasta(p, [("a\nb", "MKV")]),
        lambda p: write_fasta(p, [("", "MKV")]),
        lambda p: write_fasta(p, [("a", "MK\nV")]),
        lambda p: write_smiles(p, ["CC O"]),
        lambda p: write_smiles(p, [""]),
        lambda p: write_smiles(p, ["CCO"], names=["a", "b"]),
    ],
)
def test_writers_reject_bad_records_and_leave_no_file(tmp_path, call):
    path = tmp_path / "out.txt"
    path.write_text("previous\n")
    with pytest.raises(ValueError):
        call(path)
    assert path.read_text() == "previous\n"  # the earlier file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
