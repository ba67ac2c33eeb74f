"""Random, column, scaffold and balanced scaffold splits."""

from __future__ import annotations

import numpy as np
import pytest

from biolm.errors import InputError
from biolm.evaluation.splits import (
    balanced_scaffold_split,
    make_split,
    murcko_scaffold,
    random_split,
    scaffold_split,
)


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


def parts_by_scaffold(smiles: list[str], split: np.ndarray) -> dict[str, set[str]]:
    by_scaffold: dict[str, set[str]] = {}
    for s, part in zip(smiles, split, strict=True):
        by_scaffold.setdefault(murcko_scaffold(s), set()).add(part)
    return by_scaffold


def test_scaffold_split_keeps_each_scaffold_on_one_side():
    split = scaffold_split(SMILES, (0.6, 0.2, 0.2))
    by_scaffold = parts_by_scaffold(SMILES, split)
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
    for method in ("scaffold", "scaffold-balanced"):
        with pytest.raises(InputError, match=f"split {method} needs SMILES"):
            make_split(5, method)
    with pytest.raises(InputError, match="no test rows"):
        make_split(2, "column", column=np.array(["train", "valid"]))


def test_scaffold_ties_are_broken_as_deepchem_breaks_them():
    # Four molecules, four scaffolds of one member each: DeepChem takes the later ones first, so the
    # file's last molecules train and its first one is tested (files sorted by label need this).
    smiles = ["c1ccccc1O", "C1CCCCC1O", "c1ccncc1O", "C1CCNCC1O"]
    assert scaffold_split(smiles, (0.5, 0.25, 0.25)).tolist() == ["test", "valid", "train", "train"]


# 40 molecules: one big group (benzene, 16), then 24 single-molecule scaffolds (phenyl + ring sizes/atoms).
MANY = [
    "c1ccccc1" + tail
    for tail in (
        "O",
        "N",
        "C",
        "Cl",
        "F",
        "Br",
        "I",
        "CC",
        "CO",
        "CN",
        "OC",
        "NC",
        "CCC",
        "CCO",
        "CCN",
        "OCC",
    )
]
MANY += [f"C1{'C' * k}C1" + ring for k in range(1, 7) for ring in ("", "c2ccccc2", "c2ccncc2", "c2ccoc2")]


def test_balanced_scaffold_split_is_seeded_keeps_scaffolds_whole_and_puts_big_groups_in_train():
    assert len({murcko_scaffold(s) for s in MANY}) == 25
    fractions = (0.6, 0.2, 0.2)
    a = balanced_scaffold_split(MANY, fractions, seed=0)
    assert np.array_equal(a, make_split(len(MANY), "scaffold-balanced", smiles=MANY, fractions=fractions))
    assert np.array_equal(a, balanced_scaffold_split(MANY, fractions, seed=0))
    splits = [balanced_scaffold_split(MANY, fractions, seed=s) for s in range(5)]
    assert len({tuple(split) for split in splits}) > 1  # the seed moves the small groups
    for split in splits:
        assert all(len(parts) == 1 for parts in parts_by_scaffold(MANY, split).values())
        # The benzene group (16 > half of the 8-row valid share) always goes first, into train.
        assert set(split[:16]) == {"train"}
        assert [int(np.sum(split == p)) for p in ("train", "valid", "test")] == [24, 8, 8]
    # The deterministic split puts the last molecules into test whatever happens; this one does not.
    assert len({tuple(np.flatnonzero(split == "test")) for split in splits}) > 1
