"""Mutation strings and wild-type reconstruction."""

from __future__ import annotations

import pytest

from biolm.errors import InputError
from biolm.io.dms import format_mutant, parse_mutant, reconstruct_wild_type, wild_type_of


@pytest.mark.parametrize("text", ["H24C", "A1B:C3D", "M1*"])
def test_parse_format_round_trip(text):
    assert format_mutant(parse_mutant(text)) == text


def test_parse_values():
    assert parse_mutant("a1b:C13D") == [("A", 1, "B"), ("C", 13, "D")]


@pytest.mark.parametrize("text", ["", "H24", "24C", "H0C", "HX24C", "A1B:A1C"])
def test_parse_refuses_malformed(text):
    with pytest.raises(InputError):
        parse_mutant(text)


def test_wild_type_of_undoes_mutations():
    assert wild_type_of("MCTAY", parse_mutant("K2C")) == "MKTAY"
    assert wild_type_of("ACTAD", parse_mutant("M1A:Y5D")) == "MCTAY"
    with pytest.raises(InputError, match="has 'T' at position 3, not 'C'"):
        wild_type_of("MKTAY", parse_mutant("A3C"))
    with pytest.raises(InputError, match="past the end"):
        wild_type_of("MKT", parse_mutant("A9C"))


def test_reconstruct_wild_type_checks_every_row():
    rows = [(2, "K2C", "MCTAY"), (3, "M1A:Y5D", "AKTAD")]
    assert reconstruct_wild_type(rows, "scan.csv") == "MKTAY"
    bad = [*rows, (4, "T3G", "MKGAF")]  # implies MKTAF, not MKTAY
    with pytest.raises(
        InputError, match=r"scan\.csv: line 4: mutant T3G implies a wild type .* line 2's at position 5"
    ):
        reconstruct_wild_type(bad, "scan.csv")
    with pytest.raises(InputError, match=r"scan\.csv: line 7: .*not of the form"):
        reconstruct_wild_type([(7, "K2", "MKTAY")], "scan.csv")
