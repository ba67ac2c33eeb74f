"""biolm.io.fasta: the one FASTA parser (plain, aligned, A3M), lenient where real files differ."""

from __future__ import annotations

import gzip
import random

import pytest

from biolm.errors import InputError
from biolm.io.fasta import FastaRecord, is_fasta, iter_fasta, read_fasta


def test_records_keep_name_header_sequence_and_line(tmp_path):
    path = tmp_path / "x.fa"
    path.write_text(">a first one\nAC GT\nTT\n\n>b\n; a comment\nGG*\n>c\n")
    assert list(iter_fasta(path)) == [
        FastaRecord("a", "a first one", "ACGTTT", 1),
        FastaRecord("b", "b", "GG*", 5),
        FastaRecord("c", "c", "", 8),
    ]


def test_a3m_with_comment_nuls_crlf_and_gzip(tmp_path):
    text = "#A3M header line\r\n>query\r\nMK-T\r\n>hit\x00\r\nmk.T\x00\x00\r\n"
    path = tmp_path / "family.a3m"
    path.write_bytes(gzip.compress(text.encode()))
    records = read_fasta(path)
    assert [(r.name, r.sequence, r.line) for r in records] == [("query", "MK-T", 2), ("hit", "mk.T", 4)]


def test_text_before_the_first_header_is_not_fasta(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("\nsequence,label\nACGT,1\n")
    with pytest.raises(InputError, match=r"x\.csv: line 2: not FASTA \(text before the first '>' header"):
        list(iter_fasta(path))


def test_read_fasta_refuses_empty_files_and_empty_records(tmp_path):
    empty = tmp_path / "empty.fa"
    empty.write_text("\n")
    with pytest.raises(InputError, match=r"empty\.fa: no FASTA records"):
        read_fasta(empty)
    hole = tmp_path / "hole.fa"
    hole.write_text(">a\nAC\n>b\n>c\nGG\n")
    with pytest.raises(InputError, match=r"record 'b' \(number 2, line 3\) has an empty sequence"):
        read_fasta(hole)


def test_a_truncated_gzip_names_the_line(tmp_path):
    path = tmp_path / "x.fa.gz"
    rng = random.Random(0)
    body = "".join(rng.choice("ACGT") for _ in range(20000))
    packed = gzip.compress(f">a\n{body}\n".encode())
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(InputError, match=r"x\.fa\.gz: line \d+: cannot read"):
        list(iter_fasta(path))


def test_is_fasta_by_name():
    assert is_fasta("a/B.FASTA.gz") and is_fasta("x.faa") and not is_fasta("x.csv") and not is_fasta("x.a3m")
