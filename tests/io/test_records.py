"""Reading embedding inputs: formats, columns, ids, and one-line errors naming file and record."""

from __future__ import annotations

import gzip

import pytest

from biolm.domains import get_domain
from biolm.errors import InputError
from biolm.io.records import MAX_ID_CHARS, read_records, records_from_sequences, safe_unique_ids


def rules(domain: str):
    """The input-record rules of a domain (`biolm.domains`)."""
    return get_domain(domain).records


def test_ids_are_sanitized_and_unique():
    names = ["sp|P69905|HBA_HUMAN", "a", "a", "a_2", "a", "", ".hidden", "x/y z"]
    assert safe_unique_ids(names) == [
        "sp_P69905_HBA_HUMAN",
        "a",
        "a_3",  # a_2 belongs to the record that is called so
        "a_2",
        "a_4",
        "record",
        "hidden",
        "x_y_z",
    ]


def test_ids_are_unique_regardless_of_case_and_capped_in_length():
    # Two ids that differ only in case are one file name on macOS and Windows.
    assert safe_unique_ids(["abc", "ABC", "Abc", "abc_2"]) == ["abc", "ABC_3", "Abc_4", "abc_2"]
    long = "x" * 300
    ids = safe_unique_ids([long, long, "y" * (MAX_ID_CHARS + 1) + "z"])
    assert ids == ["x" * MAX_ID_CHARS, "x" * (MAX_ID_CHARS - 2) + "_2", "y" * MAX_ID_CHARS]
    assert len({i.lower() for i in ids}) == 3


def test_fasta_keeps_order_and_headers_and_reads_gzip(tmp_path):
    path = tmp_path / "in.fa.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(">b second record\nACGT\nAC\n>a\nTTTT\n")
    records = read_records(path, rules("dna"))
    assert [(r.name, r.header, r.sequence) for r in records] == [
        ("b", "b second record", "ACGTAC"),
        ("a", "a", "TTTT"),
    ]


def test_protein_fasta_and_a3m_are_read_as_raw_proteins(tmp_path):
    fasta = tmp_path / "p.faa"
    fasta.write_text(">p1\nMK-LV*\n")
    assert read_records(fasta, rules("protein"))[0].sequence == "MKLV"
    a3m = tmp_path / "f.a3m"
    a3m.write_text(">query\nMKLV\n>hit\nM-kLv.\n")
    assert [(r.name, r.sequence) for r in read_records(a3m, rules("protein"))] == [
        ("query", "MKLV"),
        ("hit", "MKLV"),
    ]


def test_tables_detect_or_take_columns(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("name,Sequence,other\nx,ACGT,1\ny,GGCC,2\n")
    assert [(r.name, r.sequence) for r in read_records(csv, rules("dna"))] == [
        ("x", "ACGT"),
        ("y", "GGCC"),
    ]
    tsv = tmp_path / "t.tsv"
    tsv.write_text("key\tseq_a\tseq_b\nk1\tAC\tGG\n")
    records = read_records(tsv, rules("dna"), column="seq_b", id_column="key")
    assert [(r.name, r.sequence) for r in records] == [("k1", "GG")]
    # No id column: line numbers.
    assert read_records(tsv, rules("dna"), column="seq_a")[0].name == "line_2"


def test_smiles_are_canonical_and_named(tmp_path):
    smi = tmp_path / "m.smi"
    smi.write_text("smiles\nOCC ethanol\nc1ccccc1\n")
    records = read_records(smi, rules("smiles"))
    assert [(r.name, r.sequence) for r in records] == [("ethanol", "CCO"), ("line_3", "c1ccccc1")]
    csv = tmp_path / "m.csv"
    csv.write_text("id,SMILES\nm1,OCC\n")
    assert [(r.name, r.sequence) for r in read_records(csv, rules("smiles"))] == [("m1", "CCO")]


@pytest.mark.parametrize(
    "name, content, kwargs, message",
    [
        ("e.fa", "", {}, "no FASTA records"),
        ("e.csv", "", {}, "empty file"),
        ("e.smi", "\n", {}, "empty file, no records"),
        ("m.smi", "CCO a\nC1CC b\n", {"kind": "smiles"}, "record 'b': invalid SMILES 'C1CC' (RDKit)"),
        (
            "t.csv",
            "id,seq\nx,AC\n",
            {"column": "sequence"},
            "no column 'sequence' (column); columns are id, seq",
        ),
        ("t.csv", "id,foo\nx,AC\n", {}, "no sequence column found among id, foo; name it with column"),
        ("x.bam", "data", {}, "unknown input extension .bam"),
        ("x.fa", ">x\nAC\n", {"column": "a"}, "apply to CSV/TSV tables"),
    ],
)
def test_bad_inputs_are_one_line_errors(tmp_path, name, content, kwargs, message):
    path = tmp_path / name
    path.write_text(content)
    kind = kwargs.pop("kind", "dna")
    with pytest.raises(InputError) as err:
        read_records(path, rules(kind), **kwargs)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_records(tmp_path / "nope.fa", rules("dna"))


def test_in_memory_sequences():
    assert [r.name for r in records_from_sequences(["AC", "GT"], rules("dna"))] == [
        "seq_1",
        "seq_2",
    ]
    assert [(r.name, r.sequence) for r in records_from_sequences({"m": "OCC"}, rules("smiles"))] == [
        ("m", "CCO")
    ]
    with pytest.raises(TypeError):
        records_from_sequences("ACGT", rules("dna"))
