"""Random, column and scaffold splits."""

from __future__ import annotations

import numpy as np
import pytest

from biolm.errors import InputError
from biolm.evaluation.splits import make_split, murcko_scaffold, random_split, scaffold_split


def test_random_split_is_reproducible_disjoint_and_sized():
    a = random_split(100, (0.7, 0.2, 0.1), seed=3)
    assert np.array_equal(a, random_split(100, (0.7, 0.2, 0.1), seed=3))
    assert not np.array_equal(a, random_split(100, (0.7, 0.2, 0.1), seed=4))
    # One label per row, so the parts are disjoint and cover every row.
    assert sorted(set(a)) == ["test", "train", "valid"]
    assert [int(np.sum(a == p)) for p in ("train", "valid", "test")] == [70, 20, 10]


def test_bad_fractions_are_refused():
    with pytest.raises(InputError, match="fractions"):
        random_split(10, (0.5, 0.2, 0.2), seed=0)


SMILES = [
    "c1ccccc1O",  # benzene scaffold
    "c1ccccc1N",
    "c1ccccc1C",
    "c1ccccc1Cl",
    "C1CCCCC1O",  # cyclohexane
    "C1CCCCC1N",
    "c1ccncc1",  # pyridine
    "c1ccc2ccccc2c1",  # naphthalene
    "CCO",  # acyclic: empty scaffold
    "CCN",
]


def test_scaffold_split_keeps_each_scaffold_on_one_side():
    split = scaffold_split(SMILES, (0.6, 0.2, 0.2))
    by_scaffold = {}
    for smiles, part in zip(SMILES, split, strict=True):
        by_scaffold.setdefault(murcko_scaffold(smiles), set()).add(part)
    assert all(len(parts) == 1 for parts in by_scaffold.values())
    assert len(by_scaffold) == 5
    # Largest group (benzene, 4) and the next (cyclohexane or acyclic, 2) fill train's 6 rows.
    assert list(split[:4]) == ["train"] * 4 and np.sum(split == "train") == 6
    assert np.sum(split == "test") >= 1


def test_column_split_gets_a_validation_share_of_train():
    column = np.array(["train"] * 8 + ["test"] * 2)
    out = make_split(10, "auto", column=column, fractions=(0.75, 0.25, 0.0), seed=1)
    assert list(out[8:]) == ["test", "test"]
    assert np.sum(out == "valid") == 2 and np.sum(out == "train") == 6
    assert np.array_equal(out, make_split(10, "column", column=column, fractions=(0.75, 0.25, 0.0), seed=1))


def test_split_errors():
    with pytest.raises(InputError, match="no split column"):
        make_split(5, "column")
    with pytest.raises(InputError, match="needs SMILES"):
        make_split(5, "scaffold")
    with pytest.raises(InputError, match="no test rows"):
        make_split(2, "column", column=np.array(["train", "valid"]))


def test_scaffold_ties_are_broken_as_deepchem_breaks_them():
    # Four molecules, four scaffolds of one member each: DeepChem takes the later ones first, so the
    # file's last molecules train and its first one is tested (files sorted by label need this).
    smiles = ["c1ccccc1O", "C1CCCCC1O", "c1ccncc1O", "C1CCNCC1O"]
    assert scaffold_split(smiles, (0.5, 0.25, 0.25)).tolist() == ["test", "valid", "train", "train"]
