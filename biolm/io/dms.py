"""Deep mutational scans (ProteinGym CSV: `mutant,mutated_sequence,DMS_score[,DMS_score_bin]`) and
their mutation strings (`H24C`, multiple `A1B:C3D`)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from biolm.errors import InputError
from biolm.io.tables import read_table

_MUTATION = re.compile(r"^([A-Za-z*])(\d+)([A-Za-z*])$")

Mutation = tuple[str, int, str]  # (wild-type residue, 1-based position, mutant residue)


def parse_mutant(text: str) -> list[Mutation]:
    """`"A1B:C3D"` -> [("A", 1, "B"), ("C", 3, "D")].

    Raises:
        InputError: an empty string, a malformed part, position 0 or a position given twice.
    """
    parts = [p.strip() for p in text.strip().split(":")]
    out, seen = [], set()
    for part in parts:
        match = _MUTATION.match(part)
        if match is None or int(match.group(2)) < 1:
            raise InputError(f"mutation {part!r} in {text!r} is not of the form H24C (1-based position)")
        wt, pos, mt = match.group(1).upper(), int(match.group(2)), match.group(3).upper()
        if pos in seen:
            raise InputError(f"mutation string {text!r} names position {pos} twice")
        seen.add(pos)
        out.append((wt, pos, mt))
    return out


def format_mutant(mutations: Sequence[Mutation]) -> str:
    """Inverse of `parse_mutant`."""
    return ":".join(f"{wt}{pos}{mt}" for wt, pos, mt in mutations)


def wild_type_of(mutated: str, mutations: Sequence[Mutation]) -> str:
    """Undo `mutations` in `mutated`.

    Raises:
        InputError: a position past the end, or a mutated sequence without the mutant residue there.
    """
    seq = list(mutated)
    for wt, pos, mt in mutations:
        if pos > len(seq):
            raise InputError(f"mutation {wt}{pos}{mt} is past the end of the sequence (length {len(seq)})")
        if seq[pos - 1].upper() != mt:
            raise InputError(
                f"mutation {wt}{pos}{mt}: the mutated sequence has {seq[pos - 1]!r} at position {pos}, "
                f"not {mt!r}"
            )
        seq[pos - 1] = wt
    return "".join(seq)


def reconstruct_wild_type(rows: Sequence[tuple[int, str, str]], source: str) -> str:
    """The wild type shared by every (line, mutant, mutated_sequence) row of a scan.

    Raises:
        InputError: naming the file and line of a malformed mutation, or of the first row whose
            reconstructed wild type differs from the first row's.
    """
    wild_type, first_line = None, None
    for line, mutant, mutated in rows:
        try:
            candidate = wild_type_of(mutated, parse_mutant(mutant))
        except InputError as err:
            raise InputError(f"{source}: line {line}: {err}") from None
        if wild_type is None:
            wild_type, first_line = candidate, line
        elif candidate != wild_type:
            diff = next(
                (i + 1 for i, (a, b) in enumerate(zip(candidate, wild_type, strict=False)) if a != b),
                min(len(candidate), len(wild_type)) + 1,
            )
            raise InputError(
                f"{source}: line {line}: mutant {mutant} implies a wild type that differs from line "
                f"{first_line}'s at position {diff}"
            )
    if wild_type is None:
        raise InputError(f"{source}: no variants")
    return wild_type


DMS_COLUMNS = ("mutant", "mutated_sequence", "DMS_score")


@dataclass
class Scan:
    """A deep mutational scan: its variants and the wild type they share."""

    source: str
    wild_type: str
    mutants: list[str]
    mutations: list[list[Mutation]]
    sequences: list[str]
    scores: np.ndarray  # [N] DMS_score
    lines: list[int]
    bins: np.ndarray | None = None  # [N] DMS_score_bin (1: functional), when the file has it


def _number(row: dict, column: str, path, line: int) -> float:
    try:
        value = float(row[column])
    except (TypeError, ValueError):
        value = np.nan
    if not np.isfinite(value):
        raise InputError(f"{path}: line {line}: {column} {row[column]!r} is not a finite number")
    return value


def read_scan(path: str | os.PathLike) -> Scan:
    """Read a ProteinGym-style CSV (`mutant,mutated_sequence,DMS_score[,...]`) and its wild type.

    Raises:
        InputError: a missing/empty file, a missing column, a bad mutation or score, or a row whose
            wild type disagrees with the others, naming file and line.
    """
    header, table = read_table(path)
    missing = [c for c in DMS_COLUMNS if c not in header]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}; a scan needs {', '.join(DMS_COLUMNS)}"
        )
    rows = [
        (line, dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=False)))
        for line, cells in table
    ]
    if not rows:
        raise InputError(f"{path}: no variants after the header")
    has_bins = "DMS_score_bin" in header
    mutants, mutations, sequences, scores, lines, bins = [], [], [], [], [], []
    for line, row in rows:
        mutant, sequence = (row["mutant"] or "").strip(), (row["mutated_sequence"] or "").strip()
        try:
            mutations.append(parse_mutant(mutant))
        except InputError as err:
            raise InputError(f"{path}: line {line}: {err}") from None
        scores.append(_number(row, "DMS_score", path, line))
        bins.append(int(_number(row, "DMS_score_bin", path, line)) if has_bins else 0)
        mutants.append(mutant)
        sequences.append(sequence)
        lines.append(line)
    wild_type = reconstruct_wild_type(list(zip(lines, mutants, sequences, strict=True)), str(path))
    return Scan(
        str(path),
        wild_type,
        mutants,
        mutations,
        sequences,
        np.array(scores),
        lines,
        np.array(bins) if has_bins else None,
    )
