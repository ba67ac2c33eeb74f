"""MOSES-style molecule metrics with known answers, and Tanimoto similarities against RDKit's own."""

from __future__ import annotations

import numpy as np
import pytest

from biolm.evaluation import molecule_metrics as mm

MOLECULES = [
    "CCO",
    "c1ccccc1",
    "CC(=O)Oc1ccccc1C(=O)O",
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "c1ccc2ccccc2c1",
    "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "O=C(O)c1ccccc1O",
    "C1CCNCC1",
    "c1ccc(cc1)C2CCCCC2",
    "CCN(CC)CC",
]


def test_validity_uniqueness_novelty():
    canonical = mm.canonical_valid(["CCO", "OCC", "C1CC", "", "c1ccccc1"])
    assert canonical[0] == canonical[1] == "CCO" and canonical[2] is None and canonical[3] is None
    assert mm.validity(canonical) == pytest.approx(3 / 5)
    valid = [c for c in canonical if c is not None]
    assert mm.uniqueness(valid) == pytest.approx(2 / 3)
    assert mm.uniqueness(valid, k=2) == 0.5  # the first two valid ones are one molecule
    assert mm.novelty(valid, {"CCO"}) == 0.5
    assert np.isnan(mm.uniqueness([]))


def test_tanimoto_matches_rdkit():
    from rdkit import Chem, DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    fps = [generator.GetFingerprint(Chem.MolFromSmiles(s)) for s in MOLECULES]
    bits = mm.fingerprints(MOLECULES)
    nearest = mm.nearest_similarity(bits[:4], bits[4:])
    for i in range(4):
        expected = max(DataStructs.BulkTanimotoSimilarity(fps[i], fps[4:]))
        assert nearest[i] == pytest.approx(expected)
    pairs = [DataStructs.TanimotoSimilarity(fps[i], fps[j]) for i in range(10) for j in range(10) if i != j]
    assert mm.internal_diversity(bits, 1) == pytest.approx(1 - np.mean(pairs))
    assert mm.internal_diversity(bits, 2) == pytest.approx(1 - np.sqrt(np.mean(np.square(pairs))))


def test_identical_molecules_have_no_diversity_and_full_similarity():
    bits = mm.fingerprints(["c1ccccc1O"] * 4)
    assert mm.internal_diversity(bits) == pytest.approx(0.0)
    assert mm.nearest_similarity(bits, bits).tolist() == [1.0] * 4
    assert mm.fragment_similarity(MOLECULES, MOLECULES) == pytest.approx(1.0)
    assert mm.scaffold_similarity(MOLECULES, MOLECULES) == pytest.approx(1.0)
    assert mm.scaffold_similarity(["CCO"], ["CCN"]) != mm.scaffold_similarity(MOLECULES, MOLECULES)


def test_property_distances_are_zero_for_the_same_set_and_positive_otherwise():
    same = mm.property_distances(MOLECULES, MOLECULES)
    assert all(v == pytest.approx(0.0) for v in same.values())
    other = mm.property_distances(MOLECULES[:5], MOLECULES[5:])
    assert all(v > 0 for v in other.values())


def test_fcd_of_a_set_with_itself_is_near_zero():
    pytest.importorskip("fcd_torch")
    assert mm.fcd(MOLECULES, MOLECULES) == pytest.approx(0.0, abs=1e-3)
    assert (
        mm.fcd(MOLECULES[:5], ["CCCCCCCCCCCC", "CCCCCCCCCCO", "CCCCCCCCN", "CCCCCCCCCCCCCl", "CCCCCCS"]) > 1
    )


def test_moses_metrics_table():
    pytest.importorskip("fcd_torch")
    generated = MOLECULES[:6] + ["CCO", "not a smiles"]
    out = mm.moses_metrics(generated, train={"CCO"}, test=MOLECULES)
    assert out["valid"] == pytest.approx(7 / 8)
    assert out["unique@1k"] == pytest.approx(6 / 7)
    assert out["novelty"] == pytest.approx(5 / 6)
    assert out["SNN/test"] == pytest.approx(1.0)  # every generated molecule is in the test set
    assert {"IntDiv1", "IntDiv2", "FCD/test", "Frag/test", "Scaf/test", "logP W1/test"} <= set(out)
