"""SMILES files and tables, record by record, and RDKit's canonical form of a molecule.

Formats, chosen by suffix (gzip is read by content, `biolm.io.files`):
    .smi, .txt, .smiles   SMILES, then optionally whitespace and a name; blank lines and `#` comments
                          are not records, and a header line whose first field is a SMILES column name
                          (e.g. `smiles`) is skipped.
    .csv, .tsv, .tab      a table with a header; the SMILES column is named or auto-detected.

Readers stream (a MOSES-size file is never held here) and keep each record's line number, so later
messages can name it. What to do with a SMILES RDKit cannot read is the caller's decision; files that
had some get one `ChemDataWarning` each (`warn_skipped`).

Size bound: RDKit is given no SMILES of more than `max_smiles_atoms()` atoms (`MAX_SMILES_ATOMS`,
1,000, unless the environment variable `BIOLM_MAX_SMILES_ATOMS` sets another whole number), nor of more
than `SMILES_CHARS_PER_ATOM` (16) characters per atom of that bound. RDKit's SMILES writers recurse
once per atom of a chain and overflow the stack (a segmentation fault, not an exception) from about
18,000 atoms (`'C' * 18250`; random SMILES from about 23,000), and one call on a larger molecule runs for
minutes, during which SIGTERM waits; at 1,000 atoms the slowest call found takes about a second
(Bemis-Murcko scaffold of a 1,000-atom chain; parsing 1,000 atoms with all ring closures open, 0.3 s).
The largest molecules of the project's data have 245 heavy atoms (ChEMBL peptides; MoleculeNet 132,
MOSES 27); insulin has about 400. Atoms are counted without RDKit (`smiles_atom_count`: bracket atoms
and organic-subset symbols). Over the bound, `canonical_smiles` gives None (a generated sample is then
invalid); readers of input files use `smiles_too_large` and `too_large_reason` to say why a molecule
was refused or skipped (`check_smiles_size` raises).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from biolm.errors import ConfigError, InputError
from biolm.io.columns import pick_column
from biolm.io.files import READ_ERRORS, base_name, bounded_lines, input_file, open_text
from biolm.io.tables import TABLE_SUFFIXES, cell, is_table, iter_table

SMILES_COLUMN_NAMES = ("smiles", "canonical_smiles", "isomeric_smiles", "smi", "smiles_string")
SMI_SUFFIXES = (".smi", ".smiles", ".txt")
MOLECULE_SUFFIXES = SMI_SUFFIXES + TABLE_SUFFIXES
WARNED_LINES = 5  # invalid lines quoted in a file's warning; the count covers all of them
MAX_SMILES_ATOMS = 1_000  # the default bound on the atoms of a SMILES given to RDKit (module docstring)
MAX_ATOMS_VARIABLE = "BIOLM_MAX_SMILES_ATOMS"  # the environment variable that sets another bound
SMILES_CHARS_PER_ATOM = 16  # characters allowed per atom of the bound: bonds, rings, brackets, charges
# One atom: a bracket atom (an unclosed one counted too), or an organic-subset symbol or `*` outside
# brackets; the `l` of Cl and the `r` of Br are not atoms, so C and B count them once.
_ATOM_RE = re.compile(r"\[[^\]]*\]?|[BCNOPSFIbcnosp*]")


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


def max_smiles_atoms() -> int:
    """The bound on the atoms of a SMILES given to RDKit: `BIOLM_MAX_SMILES_ATOMS` if set, else
    `MAX_SMILES_ATOMS`.

    Raises:
        ConfigError: the variable is set to anything but a whole number >= 1.
    """
    value = os.environ.get(MAX_ATOMS_VARIABLE)
    if value is None or not value.strip():
        return MAX_SMILES_ATOMS
    try:
        bound = int(value)
    except ValueError:
        bound = 0
    if bound < 1:
        raise ConfigError(
            f"environment variable {MAX_ATOMS_VARIABLE} must be a whole number of atoms >= 1 (the largest "
            f"SMILES given to RDKit; default {MAX_SMILES_ATOMS:,}), got {value!r}"
        )
    return bound


def smiles_atom_count(text: str) -> int:
    """Atoms written in `text`, counted without RDKit: bracket atoms, organic-subset symbols (B C N O
    P S F Cl Br I, aromatic b c n o s p) and `*`. Implicit hydrogens are not atoms; text that is not
    SMILES is counted all the same (an upper bound of what RDKit would build)."""
    return sum(1 for _ in _ATOM_RE.finditer(text))


def smiles_too_large(text: str) -> str | None:
    """The size of `text` if it is too large to give to RDKit ("20,000 atoms", "20,000 characters"), else
    None. Cheap: a text no longer than the bound is not scanned at all.

    Raises:
        ConfigError: a bad `BIOLM_MAX_SMILES_ATOMS`.
    """
    bound = max_smiles_atoms()
    if len(text) <= bound:  # every atom takes a character at least
        return None
    atoms = smiles_atom_count(text)
    if atoms > bound:
        return f"{atoms:,} atoms"
    if len(text) > bound * SMILES_CHARS_PER_ATOM:
        return f"{len(text):,} characters"
    return None


def too_large_reason() -> str:
    """Why a molecule over the bound is refused or skipped, with the bound and how to raise it."""
    bound = max_smiles_atoms()
    return (
        f"too large for RDKit: over the bound of {bound:,} atoms or {bound * SMILES_CHARS_PER_ATOM:,} "
        f"characters that keeps RDKit from crashing; set the environment variable {MAX_ATOMS_VARIABLE} "
        "to raise it"
    )


def check_smiles_size(text: str, where: str) -> None:
    """Raise unless `text` is small enough for RDKit (`smiles_too_large`).

    Raises:
        InputError: "{where}: SMILES of 20,000 atoms is too large for RDKit: over the bound ...",
            naming the bound and the variable that raises it.
        ConfigError: a bad `BIOLM_MAX_SMILES_ATOMS`.
    """
    size = smiles_too_large(text)
    if size is not None:
        raise InputError(f"{where}: SMILES of {size} is {too_large_reason()}")


def canonical_smiles(text: str) -> str | None:
    """RDKit's canonical SMILES of `text`, or None if RDKit cannot parse it, it has no atoms, it is too
    large for RDKit (`smiles_too_large`; never given to RDKit), or RDKit cannot write it.

    Raises:
        ConfigError: a bad `BIOLM_MAX_SMILES_ATOMS`.
    """
    if smiles_too_large(text) is not None:
        return None
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():  # our warning reports the line; RDKit's own log would only repeat it
        mol = Chem.MolFromSmiles(text)
        if mol is None or mol.GetNumAtoms() == 0:
            return None
        try:
            return Chem.MolToSmiles(mol)
        except (RuntimeError, ValueError):  # e.g. "Too many rings open at once", past 99 open rings
            return None


def canonical_records(
    path: str | os.PathLike, smiles_column: str | None = None
) -> Iterator[tuple[int, str, str | None]]:
    """(line number, SMILES text, canonical SMILES or None) of every record; None: RDKit cannot read it,
    or it is too large for RDKit (`smiles_too_large` tells which)."""
    for record in iter_smiles_records(path, smiles_column):
        yield record.line, record.smiles, canonical_smiles(record.smiles) if record.smiles else None


def warn_skipped(
    path: str | os.PathLike,
    why: str,
    skipped: Sequence[tuple[int, str] | tuple[int, str, str]],
    total: int,
    count: int | None = None,
) -> None:
    """One `ChemDataWarning` for a file: the count (`count`, else `len(skipped)`), then the first
    `WARNED_LINES` lines and texts, each with its size if it is too large for RDKit (the third item of
    an entry, else measured here); `why` is then followed by the bound unless it names it already."""
    count = len(skipped) if count is None else count
    entries = [(e[0], e[1], e[2] if len(e) > 2 else smiles_too_large(e[1])) for e in skipped[:WARNED_LINES]]
    shown = "; ".join(f"line {n}: {t[:60]!r}" + (f" ({size})" if size else "") for n, t, size in entries)
    if any(size for _, _, size in entries) and MAX_ATOMS_VARIABLE not in why:
        why = f"{why}, or {too_large_reason()}"
    more = f"; and {count - WARNED_LINES} more" if count > WARNED_LINES else ""
    warnings.warn(
        f"{Path(path)}: skipped {count} of {total} molecules ({why}): {shown}{more}",
        ChemDataWarning,
        stacklevel=3,
    )
