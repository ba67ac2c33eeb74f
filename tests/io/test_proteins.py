from __future__ import annotations

import gzip

import pytest

from biolm.data.corpora import BUILTIN_PROTEOME
from biolm.data.protein import ProteinCorpus
from biolm.errors import InputError
from biolm.io.proteins import clean_sequence, read_families, read_protein_file, sniff_format
from biolm.tokenizers import ProteinTokenizer

STOCKHOLM = """# STOCKHOLM 1.0
#=GF ID Fam1
seq1/1-9  AC-DE.fghIK
seq2/3-11 ACmDE.FG-IK
//
# STOCKHOLM 1.0
seq3      MKV
//
"""


def test_clean_sequence_unaligns():
    assert clean_sequence("--ac.DE-fg*") == "ACDEFG"
    assert clean_sequence("MK V\n") == "MKV"


def test_fasta_and_a3m(tmp_path):
    path = tmp_path / "x.a3m"
    path.write_text("#3\t1\n>query desc\nMKV-L\n>hit1\nMk.-vL\n\x00")
    (family,) = read_protein_file(path)
    assert family.name == "x" and [(r.name, r.sequence) for r in family.records] == [
        ("query", "MKVL"),
        ("hit1", "MKVL"),
    ]


def test_gzip_and_stop_codon(tmp_path):
    path = tmp_path / "p.faa.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(">a\nMKV\nLL*\n>b\nAC\n")
    (family,) = read_families(path)
    assert [r.sequence for r in family.records] == ["MKVLL", "AC"]


def test_truncated_gzip_is_a_one_line_error(tmp_path):
    whole = gzip.compress(b"".join(b">r%d\nMKVLLACDEFG\n" % i for i in range(2000)))
    path = tmp_path / "cut.faa.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError, match=r"cut.faa.gz: line \d+: cannot read"):
        read_protein_file(path)


def test_stockholm_gives_one_family_per_alignment(tmp_path):
    path = tmp_path / "f.sto"
    path.write_text(STOCKHOLM)
    assert sniff_format(path) == "stockholm"
    families = read_families(path)
    assert [f.name for f in families] == ["f", "f#2"]
    assert [r.sequence for r in families[0].records] == ["ACDEFGHIK", "ACMDEFGIK"]
    assert families[1].records[0].name == "seq3"


def test_directory_of_families(tmp_path):
    (tmp_path / "PF1.fasta").write_text(">a\nMKV\n>b\nMKL\n")
    with gzip.open(tmp_path / "PF2.fasta.gz", "wt") as handle:
        handle.write(">c\nAAA\n")
    (tmp_path / "README.md").write_text("not a family")
    families = read_families(tmp_path)
    assert [(f.name, len(f.records)) for f in families] == [("PF1", 2), ("PF2", 1)]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty file"),
        ("\n\n", "empty file"),
        ("MKV\n", "not FASTA, A3M or Stockholm"),
        (">a\nMKV\n>gappy\n--..\n", "record 'gappy': empty sequence"),
        ("# STOCKHOLM 1.0\nseq1 MKV\nseq1\n//\n", "malformed stockholm file"),
    ],
)
def test_unusable_files_name_file_and_record(tmp_path, content, message):
    path = tmp_path / "bad.fa"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        read_families(path)
    assert str(path) in str(info.value)


def test_missing_file_and_empty_directory(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_families(tmp_path / "nope.fa")
    with pytest.raises(InputError, match="no sequence files"):
        read_families(tmp_path)


def test_invalid_residue_names_file_record_and_position(tmp_path):
    path = tmp_path / "bad.fa"
    path.write_text(">ok\nMKVL\n>broken one\nMK-J\n")
    with pytest.raises(InputError, match=r"bad\.fa: record 'broken': invalid character 'J' at position 3"):
        ProteinCorpus(path, ProteinTokenizer(), 0.5, seed=0)
    ProteinCorpus(path, ProteinTokenizer(unknown="replace"), 0.5, seed=0)


def test_builtin_proteome_split_is_fixed_and_disjoint():
    assert BUILTIN_PROTEOME.is_file()
    tok = ProteinTokenizer()
    a = ProteinCorpus(None, tok, 0.05, seed=0)
    b = ProteinCorpus(None, tok, 0.05, seed=0)
    assert len(a.sequences("train")) + len(a.sequences("val")) == 2100
    assert len(a.sequences("val")) == 105
    assert [x.tobytes() for x in a.sequences("val")] == [x.tobytes() for x in b.sequences("val")]
    other = ProteinCorpus(None, tok, 0.05, seed=1)
    assert [x.tobytes() for x in a.sequences("val")] != [x.tobytes() for x in other.sequences("val")]
