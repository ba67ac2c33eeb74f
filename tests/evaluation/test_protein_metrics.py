"""Protein sample measures: alignment identity, profile-HMM hits (pyhmmer), HMM lookup, lengths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biolm.errors import InputError
from biolm.evaluation.protein_metrics import (
    hmm_for_family,
    hmm_hits,
    identity,
    length_summary,
    nearest_identity,
    read_hmm,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "protein"
CONSENSUS = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ"


def test_identity_known_cases():
    assert identity("ACDEFGHIKL", "ACDEFGHIKL") == 1.0
    assert identity("ACDEFGHIKL", "ACDEFGHIKW") == pytest.approx(0.9)
    assert identity("DEFGH", "ACDEFGHIKL") == 1.0  # contained: identity over the shorter one
    assert identity("", "ACD") == 0.0
    assert identity("AUC", "AUC") == 1.0  # U is not in BLOSUM62: aligned as X, still identical


def test_nearest_identity_picks_the_closest_reference():
    samples = ["ACDEFGHIKL", "WWWWWWWWWW", ""]
    references = ["ACDEFGHIKW", "ACDEFGHIKL", "WWWWWWWWWA"]
    best, which = nearest_identity(samples, references)
    assert which.tolist() == [1, 2, -1]
    np.testing.assert_allclose(best, [1.0, 0.9, 0.0])
    assert nearest_identity(["ACD"], [])[1].tolist() == [-1]


def _mutants(n: int, rate: float, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    out = []
    for _ in range(n):
        seq = np.array(list(CONSENSUS))
        flip = rng.random(len(seq)) < rate
        seq[flip] = rng.choice(letters, int(flip.sum()))
        out.append("".join(seq))
    return out


def _write_hmm(path: Path, gathering: tuple[float, float] | None) -> Path:
    from pyhmmer import easel, plan7

    alphabet = easel.Alphabet.amino()
    members = [easel.TextSequence(name=f"m{i}", sequence=s) for i, s in enumerate(_mutants(20, 0.1, 0))]
    msa = easel.TextMSA(name="toy", sequences=members).digitize(alphabet)
    hmm, _, _ = plan7.Builder(alphabet).build_msa(msa, plan7.Background(alphabet))
    if gathering is not None:
        hmm.cutoffs.gathering = gathering
    with open(path, "wb") as handle:
        hmm.write(handle)
    return path


@pytest.mark.parametrize("gathering", [(20.0, 20.0), None])
def test_hmm_hits_family_members_and_not_random_sequences(tmp_path, gathering):
    hmm = _write_hmm(tmp_path / "toy.hmm", gathering)
    rng = np.random.default_rng(1)
    random = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), len(CONSENSUS))) for _ in range(5)]
    relatives = _mutants(5, 0.2, seed=2)
    found = hmm_hits(hmm, relatives + random + [""])
    assert found.hit.tolist() == [True] * 5 + [False] * 6
    assert np.isfinite(found.score[:5]).all() and np.isnan(found.score[-1])
    assert found.threshold.startswith("gathering") == (gathering is not None)


def test_gathering_threshold_decides(tmp_path):
    relatives = _mutants(5, 0.2, seed=2)
    low = hmm_hits(_write_hmm(tmp_path / "low.hmm", (5.0, 5.0)), relatives)
    high = hmm_hits(_write_hmm(tmp_path / "high.hmm", (1000.0, 1000.0)), relatives)
    assert low.hit.all() and not high.hit.any()


def test_unreadable_hmm_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.hmm"
    bad.write_text("not an HMM\n")
    with pytest.raises(InputError, match="bad.hmm"):
        read_hmm(bad)


def test_hmm_for_family(tmp_path):
    (tmp_path / "PF00096.hmm").write_text("")
    assert hmm_for_family(Path("PF00096_seed.fasta"), tmp_path) == tmp_path / "PF00096.hmm"
    assert hmm_for_family(Path("PF00096.a3m.gz"), tmp_path) == tmp_path / "PF00096.hmm"
    assert hmm_for_family(Path("PF99999_seed.fasta"), tmp_path) is None


def test_length_summary():
    s = length_summary([10, 20, 30])
    assert s["mean"] == 20 and s["median"] == 20 and s["sd"] == pytest.approx(10)
    assert np.isnan(length_summary([])["mean"])


@pytest.mark.skipif(not (SHARED / "pfam_hmm").is_dir(), reason="../shared/data is not present")
def test_pfam_seed_members_hit_their_hmm_and_not_another():
    from biolm.io.proteins import read_protein_file

    ww = [r.sequence for r in read_protein_file(SHARED / "pfam_seed" / "PF00397_seed.fasta")[0].records][:40]
    own = hmm_hits(SHARED / "pfam_hmm" / "PF00397.hmm", ww)
    other = hmm_hits(SHARED / "pfam_hmm" / "PF00005.hmm", ww)
    assert own.hit.mean() > 0.9 and not other.hit.any()
