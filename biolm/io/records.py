"""Input records for embedding: any supported file (or in-memory sequences) -> (id, header, sequence).

Formats, chosen by the file name's suffix (gzip is read by content, a trailing `.gz` or `.bgz` ignored):
    FASTA        .fa .fasta .fna .faa .fas .ffn .fsa .mfa; DNA or protein
    A3M          .a3m: gaps removed, insert columns upper-cased (the raw proteins)
    Stockholm    .sto .stk .stockholm: as A3M
    SMILES       .smi .smiles .txt: SMILES, then optionally whitespace and a name
    tables       .csv .tsv .tab: a header row; the sequence/SMILES column and the id column are chosen by
                 name or auto-detected

Ids are made safe for file names, HDF5 paths and shells (`safe_unique_ids`); the original header stays
in `Record.header`. For SMILES models every molecule is checked by RDKit and embedded as its canonical
SMILES (the form the model was trained on), so two spellings of a molecule get one vector.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from biolm.errors import ArgumentError, InputError
from biolm.io.columns import pick_column
from biolm.io.fasta import FASTA_SUFFIXES, read_fasta
from biolm.io.files import base_name, input_file
from biolm.io.proteins import clean_sequence, read_protein_file
from biolm.io.smiles import (
    SMI_SUFFIXES,
    canonical_smiles,
    check_smiles_size,
    iter_smiles_records,
)
from biolm.io.tables import TABLE_SUFFIXES, cell, read_table

ALIGNMENT_SUFFIXES = (".a3m", ".sto", ".stk", ".stockholm")
# Auto-detected table columns, compared case-insensitively, in this order of preference.
SEQUENCE_COLUMN_NAMES = ("sequence", "seq", "sequences", "protein", "aa_seq", "dna", "smiles")
ID_COLUMN_NAMES = ("id", "name", "identifier", "accession", "seq_id", "record", "molecule_id", "chembl_id")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
# The longest id: ids name files, HDF5 paths and rows; a file name may have at most 255 bytes.
MAX_ID_CHARS = 128


@dataclass(frozen=True)
class Record:
    """One sequence to embed: its original id and header (or table id) and its sequence text."""

    name: str
    header: str
    sequence: str


@dataclass(frozen=True)
class RecordRules:
    """How one domain's input records are read (each `biolm.domains.Domain` has its rules).

    Attributes:
        column_names: the table columns auto-detected as the sequence column, in order of preference
            (compared case-insensitively).
        fasta_record: applied to each FASTA record, given the file (proteins: gaps and a final `*`
            removed, as in training); None keeps them as read.
        every_record: applied to every record, from a file or from memory, given a source name for
            errors (SMILES: checked and canonicalised with RDKit); None keeps them as read.
    """

    column_names: tuple[str, ...] = SEQUENCE_COLUMN_NAMES
    fasta_record: Callable[[Path, Record], Record] | None = None
    every_record: Callable[[str, Record], Record] | None = None


def input_format(path: Path) -> str:
    """ "fasta", "alignment", "smiles" or "table" from the suffix.

    Raises:
        InputError: an unknown suffix, naming the ones that are known.
    """
    name = base_name(path)
    for fmt, suffixes in (
        ("fasta", FASTA_SUFFIXES),
        ("alignment", ALIGNMENT_SUFFIXES),
        ("smiles", SMI_SUFFIXES),
        ("table", TABLE_SUFFIXES),
    ):
        if name.endswith(suffixes):
            return fmt
    suffix = Path(name).suffix or "(none)"
    raise InputError(
        f"{path}: unknown input extension {suffix}; expected FASTA ({' '.join(FASTA_SUFFIXES)}), A3M or "
        f"Stockholm ({' '.join(ALIGNMENT_SUFFIXES)}), SMILES ({' '.join(SMI_SUFFIXES)}) or a table "
        f"({' '.join(TABLE_SUFFIXES)}), optionally .gz or .bgz"
    )


def read_records(
    path: str | os.PathLike, rules: RecordRules, column: str | None = None, id_column: str | None = None
) -> list[Record]:
    """Every record of an input file, in file order, ready for the model's tokenizer.

    Args:
        path: the input file.
        rules: the model's domain's rules (`biolm.domains.Domain.records`): e.g. protein FASTA records
            lose gaps and a final `*` as in training; SMILES are checked and canonicalised with RDKit.
        column: table column holding the sequences or SMILES (exact name); auto-detected if None.
        id_column: table column holding the ids (exact name); auto-detected if None, else line numbers.

    Raises:
        InputError: one line naming the file and, where there is one, the record: missing or empty file,
            unknown extension, invalid SMILES, empty sequence;
        ArgumentError (an InputError): a missing column, or a column given for a file without columns.
    """
    path = input_file(path)
    fmt = input_format(path)
    if fmt != "table" and (column is not None or id_column is not None):
        raise ArgumentError(
            f"{path}: {{column}} and {{id_column}} apply to CSV/TSV tables, not to {fmt} files",
            "column",
            "id_column",
        )
    if fmt == "fasta":
        records = [Record(r.name, r.header, r.sequence) for r in read_fasta(path)]
        if rules.fasta_record is not None:
            records = [rules.fasta_record(path, r) for r in records]
    elif fmt == "alignment":
        records = [
            Record(r.name, r.name, r.sequence) for family in read_protein_file(path) for r in family.records
        ]
    elif fmt == "smiles":
        records = _smiles_file(path)
    else:
        records = _table(path, rules.column_names, column, id_column)
    if not records:
        raise InputError(f"{path}: empty file, no records")
    if rules.every_record is not None:
        records = [rules.every_record(str(path), r) for r in records]
    return records


def records_from_sequences(sequences: Sequence[str] | Mapping[str, str], rules: RecordRules) -> list[Record]:
    """Records of in-memory sequences: a list (ids seq_1, seq_2, ...) or a dict {id: sequence}."""
    if isinstance(sequences, str):
        raise TypeError("pass a path (str or Path) or a list/dict of sequences, not a single sequence string")
    items = (
        sequences.items()
        if isinstance(sequences, Mapping)
        else ((f"seq_{i}", s) for i, s in enumerate(sequences, start=1))
    )
    records = [Record(str(name), str(name), seq) for name, seq in items]
    if not records:
        raise InputError("no sequences to embed")
    if rules.every_record is not None:
        records = [rules.every_record("input", r) for r in records]
    return records


def safe_unique_ids(names: Sequence[str]) -> list[str]:
    """Ids safe in file names, HDF5 paths and shells, unique in order of appearance.

    Every character outside `A-Za-z0-9._-` becomes `_` (so `sp|P69905|HBA_HUMAN` is
    `sp_P69905_HBA_HUMAN`), a leading `.` too (no hidden files), an empty id becomes `record`, and an
    id is cut to `MAX_ID_CHARS` characters (a FASTA header may be far longer than a file name may be).
    Ids are unique regardless of case, as they must be as file names on macOS and Windows: the second
    and later ids equal to an earlier one but for case get `_2`, `_3`, ... (skipping any that another
    record already has), within the same length. The original header is kept beside the id (`Record`).
    """
    safe = [(_UNSAFE.sub("_", name).lstrip(".") or "record")[:MAX_ID_CHARS] for name in names]
    taken = {name.lower() for name in safe}
    seen: set[str] = set()
    out = []
    for name in safe:
        unique, k = name, 1
        while unique.lower() in seen or (unique != name and unique.lower() in taken):
            k += 1
            suffix = f"_{k}"
            unique = name[: MAX_ID_CHARS - len(suffix)] + suffix
        seen.add(unique.lower())
        out.append(unique)
    return out


def cleaned_protein(path: Path, record: Record) -> Record:
    """A protein record without gaps and a final `*` (as training reads proteins)."""
    seq = clean_sequence(record.sequence)
    if not seq:
        raise InputError(f"{path}: record {record.name!r}: empty sequence (nothing left after removing gaps)")
    return Record(record.name, record.header, seq)


def canonical_molecule(source: str, record: Record) -> Record:
    """A SMILES record checked by RDKit, as its canonical SMILES (the form training uses)."""
    # Measured before RDKit sees it: a molecule too large for RDKit can crash it (`biolm.io.smiles`).
    check_smiles_size(record.sequence, f"{source}: record {record.name!r}")
    smiles = canonical_smiles(record.sequence) if record.sequence else None
    if smiles is None:
        raise InputError(f"{source}: record {record.name!r}: invalid SMILES {record.sequence[:60]!r} (RDKit)")
    return Record(record.name, record.header, smiles)


def _smiles_file(path: Path) -> list[Record]:
    """SMILES lines (`biolm.io.smiles`); the name is the first word after the SMILES, if any."""
    records = []
    for record in iter_smiles_records(path):
        name = record.rest.split()[0] if record.rest else f"line_{record.line}"
        records.append(Record(name, record.rest or name, record.smiles))
    return records


def _table(path: Path, names: tuple[str, ...], column: str | None, id_column: str | None) -> list[Record]:
    header, rows = read_table(path)
    seq_col = pick_column(header, names, path=path, what="sequence", argument="column", wanted=column)
    id_col = pick_column(
        header, ID_COLUMN_NAMES, path=path, what="id", argument="id_column", wanted=id_column, required=False
    )
    records = []
    for line, row in rows:
        name = cell(row, id_col) or f"line_{line}"
        seq = cell(row, seq_col)
        if not seq:
            raise InputError(f"{path}: record {name!r} (line {line}): empty {header[seq_col]!r} value")
        records.append(Record(name, name, seq))
    return records
