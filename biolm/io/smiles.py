"""SMILES files and tables, record by record, and RDKit's canonical form of a molecule.

Formats, chosen by suffix (gzip is read by content, `biolm.io.files`):
    .smi, .txt, .smiles   SMILES, then optionally whitespace and a name; blank lines and `#` comments
                          are not records, and a header line whose first field is a SMILES column name
                          (e.g. `smiles`) is skipped.
    .csv, .tsv, .tab      a table with a header; the SMILES column is named or auto-detected.

Readers stream (a MOSES-size file is never held here) and keep each record's line number, so later
messages can name it. What to do with a SMILES RDKit cannot read is the caller's decision; files that
had some get one `ChemDataWarning` each (`warn_skipped`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from biolm.errors import InputError
from biolm.io.columns import pick_column
from biolm.io.files import READ_ERRORS, base_name, bounded_lines, input_file, open_text
from biolm.io.tables import TABLE_SUFFIXES, cell, is_table, iter_table

SMILES_COLUMN_NAMES = ("smiles", "canonical_smiles", "isomeric_smiles", "smi", "smiles_string")
SMI_SUFFIXES = (".smi", ".smiles", ".txt")
MOLECULE_SUFFIXES = SMI_SUFFIXES + TABLE_SUFFIXES
WARNED_LINES = 5  # invalid lines quoted in a file's warning; the count covers all of them


class ChemDataWarning(UserWarning):
    """Molecules of a file were skipped (RDKit cannot read them, or tokens outside the vocabulary)."""


@dataclass(frozen=True)
class SmilesRecord:
    """One record: its 1-based line, the SMILES text as written, and the rest of a `.smi` line (the
    name and anything after it; "" in a table)."""

    line: int
    smiles: str
    rest: str = ""


def is_molecule_file(path: str | os.PathLike) -> bool:
    """Whether the name says SMILES or a table (`MOLECULE_SUFFIXES`, optionally `.gz`)."""
    return base_name(path).endswith(MOLECULE_SUFFIXES)


def iter_smiles_records(path: str | os.PathLike, smiles_column: str | None = None) -> Iterator[SmilesRecord]:
    """Every record of a SMILES file or table, streamed, before any chemistry check.

    Args:
        smiles_column: the table column holding SMILES (exact name); auto-detected when None.

    Raises:
        InputError: a missing or unreadable file, a table without a header;
        ArgumentError (an InputError): no column `smiles_column`, or none found (argument
            `smiles_column`).
    """
    path = input_file(path)
    if is_table(path):
        rows = iter_table(path)
        first = next(rows, None)
        if first is None:
            raise InputError(f"{path}: empty file, no header")
        header = first[1]
        column = pick_column(
            header,
            SMILES_COLUMN_NAMES,
            path=path,
            what="SMILES",
            argument="smiles_column",
            wanted=smiles_column,
        )
        for number, row in rows:
            yield SmilesRecord(number, cell(row, column))
        return
    try:
        with open_text(path) as handle:
            first_record = True
            for number, line in enumerate(bounded_lines(handle, path), start=1):
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                smiles, *rest = text.split(None, 1)
                if first_record and smiles.lower() in SMILES_COLUMN_NAMES:
                    first_record = False
                    continue
                first_record = False
                yield SmilesRecord(number, smiles, rest[0].strip() if rest else "")
    except READ_ERRORS as err:
        raise InputError(f"{path}: cannot read ({err})") from None


def canonical_smiles(text: str) -> str | None:
    """RDKit's canonical SMILES of `text`, or None if RDKit cannot parse it (or it has no atoms)."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():  # our warning reports the line; RDKit's own log would only repeat it
        mol = Chem.MolFromSmiles(text)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return Chem.MolToSmiles(mol)


def canonical_records(
    path: str | os.PathLike, smiles_column: str | None = None
) -> Iterator[tuple[int, str, str | None]]:
    """(line number, SMILES text, canonical SMILES or None if RDKit cannot read it) of every record."""
    for record in iter_smiles_records(path, smiles_column):
        yield record.line, record.smiles, canonical_smiles(record.smiles) if record.smiles else None


def warn_skipped(
    path: str | os.PathLike, why: str, skipped: list[tuple[int, str]], total: int, count: int | None = None
) -> None:
    """One `ChemDataWarning` for a file: the count (`count`, else `len(skipped)`), then the first
    `WARNED_LINES` lines and texts."""
    count = len(skipped) if count is None else count
    shown = "; ".join(f"line {n}: {t[:60]!r}" for n, t in skipped[:WARNED_LINES])
    more = f"; and {count - WARNED_LINES} more" if count > WARNED_LINES else ""
    warnings.warn(
        f"{Path(path)}: skipped {count} of {total} molecules ({why}): {shown}{more}",
        ChemDataWarning,
        stacklevel=3,
    )
