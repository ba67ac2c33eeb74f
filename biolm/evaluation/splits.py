"""Train/valid/test splits: the file's own split column, a seeded random split, or a scaffold split
(deterministic, largest scaffolds first, or balanced: scaffold groups in a seeded random order)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from biolm.errors import ArgumentError, InputError
from biolm.io.smiles import check_smiles_size

PARTS = ("train", "valid", "test")
METHODS = ("auto", "column", "random", "scaffold", "scaffold-balanced")


def check_fractions(fractions: tuple[float, float, float]) -> tuple[float, float, float]:
    """Validate (train, valid, test) fractions: three non-negative numbers summing to 1, train > 0."""
    if len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise InputError(
            f"split fractions must be three numbers >= 0 summing to 1 (train > 0), got {fractions}"
        )
    return tuple(float(f) for f in fractions)


def random_split(n: int, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """[n] part names: a seeded permutation cut at the fractions (same seed, same split)."""
    fractions = check_fractions(fractions)
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_valid = int(round(fractions[1] * n))
    out = np.full(n, "test", dtype=object)
    out[order[:n_train]] = "train"
    out[order[n_train : n_train + n_valid]] = "valid"
    return out.astype(str)


def murcko_scaffold(smiles: str) -> str:
    """Bemis-Murcko scaffold SMILES (RDKit); acyclic molecules share the empty scaffold.

    Raises:
        InputError: `smiles` is too large for RDKit (`biolm.io.smiles.check_smiles_size`; labelled
            tables leave such molecules out when they are read).
    """
    check_smiles_size(smiles, "scaffold split")
    from rdkit import rdBase
    from rdkit.Chem.Scaffolds import MurckoScaffold

    with rdBase.BlockLogs():
        return MurckoScaffold.MurckoScaffoldSmiles(smiles=smiles, includeChirality=False)


def scaffold_split(smiles: list[str], fractions: tuple[float, float, float]) -> np.ndarray:
    """[n] part names with every Bemis-Murcko scaffold on one side only.

    Deterministic, as in DeepChem and MoleculeNet: scaffold groups are taken largest first and fill
    train, then valid, then test, so the rarest scaffolds land in test. Ties are broken as DeepChem
    breaks them (`sorted(..., key=(size, first index), reverse=True)`: of two groups of one size, the one
    that starts later in the file goes first). That matters: MoleculeNet files are often ordered by
    label, and ties broken the other way put only one class into valid and test (BBBP: all positive).
    """
    fractions = check_fractions(fractions)
    ordered = sorted(scaffold_groups(smiles), key=lambda g: (len(g), g[0]), reverse=True)
    n = len(smiles)
    out = np.full(n, "test", dtype=object)
    limits = (fractions[0] * n, (fractions[0] + fractions[1]) * n)
    filled = 0
    for group in ordered:
        if filled + len(group) <= limits[0]:
            out[group] = "train"
        elif filled + len(group) <= limits[1]:
            out[group] = "valid"
        filled += len(group)
    return out.astype(str)


def balanced_scaffold_split(
    smiles: list[str], fractions: tuple[float, float, float], seed: int
) -> np.ndarray:
    """[n] part names with every Bemis-Murcko scaffold on one side only, groups in a seeded order.

    The "balanced scaffold" split of chemprop and of GROVER-style benchmarks: groups too big for half
    of the valid or test share go first, so they land in train; the other groups follow in a random
    order (seeded). Each group goes to train while train has room, else to valid while valid has
    room, else to test. Unlike `scaffold_split`, test is not the rarest scaffolds alone, and
    different seeds give different splits (report mean and sd over split seeds).
    """
    fractions = check_fractions(fractions)
    n = len(smiles)
    sizes = (fractions[0] * n, fractions[1] * n, fractions[2] * n)
    big, small = [], []
    for group in scaffold_groups(smiles):
        (big if len(group) > min(sizes[1], sizes[2]) / 2 else small).append(group)
    rng = np.random.default_rng(seed)
    order = [big[i] for i in rng.permutation(len(big))] + [small[i] for i in rng.permutation(len(small))]
    out = np.full(n, "test", dtype=object)
    filled = {"train": 0, "valid": 0}
    for group in order:
        for part, room in (("train", sizes[0]), ("valid", sizes[1])):
            if filled[part] + len(group) <= room:
                out[group] = part
                filled[part] += len(group)
                break
    return out.astype(str)


def scaffold_groups(smiles: list[str]) -> list[list[int]]:
    """Row indices grouped by Bemis-Murcko scaffold, groups in order of first appearance."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(smiles):
        groups[murcko_scaffold(s)].append(i)
    return list(groups.values())


def make_split(
    n: int,
    method: str,
    *,
    column: np.ndarray | None = None,
    smiles: list[str] | None = None,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    source: str = "data",
) -> np.ndarray:
    """The split of n rows by `method`.

    "auto" uses the file's split column when there is one, else a random split. A column without
    validation rows (e.g. MoleculeACE's train/test) gets a validation share of its training rows,
    drawn with `seed` (fractions[1] / (fractions[0] + fractions[1]) of them). "random" and
    "scaffold-balanced" draw with `seed`; "scaffold" is deterministic.

    Raises:
        InputError: an unknown method, "column" without a column, a scaffold split without SMILES, or a split
            with no training or no test rows.
    """
    if method not in METHODS:
        raise ArgumentError(f"{{split}} must be one of {', '.join(METHODS)}, got {method!r}", "split")
    if method == "auto":
        method = "column" if column is not None else "random"
    if method == "column":
        if column is None:
            raise ArgumentError(f"{source}: {{split}} column but the file has no split column", "split")
        out = np.asarray(column).astype(str).copy()
        train = np.flatnonzero(out == "train")
        if not np.any(out == "valid") and fractions[1] > 0:
            share = fractions[1] / (fractions[0] + fractions[1])
            pick = np.random.default_rng(seed).permutation(train)[: int(round(share * len(train)))]
            out[pick] = "valid"
    elif method == "random":
        out = random_split(n, fractions, seed)
    else:
        if smiles is None:
            raise ArgumentError(
                f"{source}: {{split}} {method} needs SMILES (name the column with {{sequence_column}})",
                "split",
                "sequence_column",
            )
        if method == "scaffold":
            out = scaffold_split(smiles, fractions)
        else:
            out = balanced_scaffold_split(smiles, fractions, seed)
    for part in ("train", "test"):
        if not np.any(out == part):
            raise InputError(f"{source}: the {method} split leaves no {part} rows ({n} rows)")
    return out
