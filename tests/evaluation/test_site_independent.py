"""The site-independent model against scores worked out by hand, its match columns, its errors, and
the BLAT_ECOLX number it must reproduce on the shared data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from biolm.errors import InputError
from biolm.evaluation.site_independent import (
    SiteIndependentModel,
    check_query,
    identity_to_query,
    sequence_weights,
)
from biolm.io.msa import read_alignment

# Match columns ACDE; s2 has an insert (lower case) and is the query again; s3 starts with a gap.
HAND_MSA = ">q\nACDE\n>s1\nACDF\n>s2\nAcCDE\n>s3\n-CEE\n"
BLAT = Path(__file__).resolve().parents[3] / "shared" / "data" / "protein" / "blat"


@pytest.fixture
def hand(tmp_path):
    path = tmp_path / "hand.a3m"
    path.write_text(HAND_MSA)
    return read_alignment(path)


def test_a3m_match_columns_and_sequences(hand):
    assert hand.rows == ["ACDE", "ACDF", "ACDE", "-CEE"]
    assert hand.sequences == ["ACDE", "ACDF", "ACCDE", "CEE"]
    np.testing.assert_allclose(identity_to_query(hand), [1, 3 / 4, 1, 2 / 4])


def test_weights_and_scores_by_hand(hand):
    # Identity >= 0.8 of 4 columns needs all 4 equal: q and s2 are each other's neighbours.
    np.testing.assert_allclose(sequence_weights(hand, 0.8), [1 / 2, 1, 1 / 2, 1])
    # At 0.5, s3 ('-CEE') shares 2 of 4 with q and s2 and 1 with s1; q, s1, s2 share >= 3.
    np.testing.assert_allclose(sequence_weights(hand, 0.5), [1 / 4, 1 / 3, 1 / 4, 1 / 3])
    model = SiteIndependentModel.fit(check_query(hand, "ACDE"), identity=0.8, pseudocount=0.5)
    assert model.effective_sequences == pytest.approx(3.0)
    # column 1: A with weight 0.5 + 1 + 0.5 = 2 (s3 has a gap): p(A) = 2.5 / 12, p(G) = 0.5 / 12
    assert math.exp(model.log_probs[0, 0]) == pytest.approx(2.5 / 12)
    # column 4: E 0.5 + 0.5 + 1 = 2, F 1: p(E) = 2.5 / 13, p(F) = 1.5 / 13; column 3 likewise D / E
    scores = model.score([[("E", 4, "F")], [("A", 1, "G")], [("D", 3, "E"), ("E", 4, "F")]])
    np.testing.assert_allclose(scores, [math.log(1.5 / 2.5), math.log(0.5 / 2.5), 2 * math.log(1.5 / 2.5)])


def test_query_as_a_stretch_of_the_wild_type(hand):
    model = SiteIndependentModel.fit(check_query(hand, "MACDEK"))
    assert model.query_start == 2
    scores = model.score([[("A", 2, "G")], [("M", 1, "A")], [("K", 6, "R")]])
    assert scores[0] == pytest.approx(math.log(0.5 / 2.5)) and scores[1] == scores[2] == 0


def test_aligned_fasta_keeps_the_query_columns(tmp_path):
    path = tmp_path / "aligned.fasta"
    path.write_text(">q\nA-CDE\n>s\nAKCDF\n")
    alignment = read_alignment(path)
    assert alignment.rows == ["ACDE", "ACDF"] and alignment.sequences == ["ACDE", "AKCDF"]


def test_a_wild_type_that_is_not_the_query_names_file_and_record(hand):
    with pytest.raises(InputError, match=r"hand\.a3m: record 'q'.*differ at position 3") as err:
        check_query(hand, "ACKE")
    assert len(str(err.value).splitlines()) == 1


def test_no_usable_homologs(tmp_path):
    path = tmp_path / "only.a3m"
    path.write_text(">q\nACDE\n>gaps\n----\n")
    with pytest.raises(InputError, match=r"only\.a3m: no usable homologs"):
        read_alignment(path)


def test_malformed_msas_name_file_and_record(tmp_path):
    ragged = tmp_path / "ragged.fasta"
    ragged.write_text(">q\nACDE\n>short\nACD\n")
    with pytest.raises(InputError, match=r"ragged\.fasta: record 'short': 3 aligned columns"):
        read_alignment(ragged)
    other = tmp_path / "table.a3m"
    other.write_text("mutant,score\nA1C,0.5\n")
    with pytest.raises(InputError, match=r"table\.a3m: not FASTA"):
        read_alignment(other)


@pytest.mark.skipif(not BLAT.is_dir(), reason="needs ../shared/data (the BLAT_ECOLX MSA and scan)")
def test_blat_site_independent_spearman():
    from scipy.stats import spearmanr

    from biolm.evaluation.site_independent import site_independent_scores
    from biolm.io.dms import read_scan

    scan = read_scan(BLAT / "BLAT_ECOLX_Jacquier_2013.csv")
    scores, model = site_independent_scores(BLAT / "BLAT_ECOLX_ColabFold_2202.a3m.gz", scan)
    assert spearmanr(scores, scan.scores).statistic == pytest.approx(0.6307, abs=2e-3)
    assert model.log_probs.shape == (286, 20) and 3000 < model.effective_sequences < 4501
