"""Input records for embedding: any supported file (or in-memory sequences) -> (id, header, sequence).

Formats, chosen by the file name's suffix (a trailing `.gz` is read through gzip):
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

import csv
import gzip
import io
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from biolm.data.chem import (
    SMI_SUFFIXES,
    SMILES_COLUMN_NAMES,
    TABLE_SUFFIXES,
    canonical_smiles,
    iter_smiles_records,
)
from biolm.data.protein_io import clean_sequence, read_protein_file
from biolm.errors import InputError
from biolm.inference.io import read_fasta_records

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".faa", ".fas", ".ffn", ".fsa", ".mfa")
ALIGNMENT_SUFFIXES = (".a3m", ".sto", ".stk", ".stockholm")
# Auto-detected table columns, compared case-insensitively, in this order of preference.
SEQUENCE_COLUMN_NAMES = ("sequence", "seq", "sequences", "protein", "aa_seq", "dna", "smiles")
ID_COLUMN_NAMES = ("id", "name", "identifier", "accession", "seq_id", "record", "molecule_id", "chembl_id")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Record:
    """One sequence to embed: its original id and header (or table id) and its sequence text."""

    name: str
    header: str
    sequence: str


def input_format(path: Path) -> str:
    """ "fasta", "alignment", "smiles" or "table" from the suffix.

    Raises:
        InputError: an unknown suffix, naming the ones that are known.
    """
    name = path.name.lower().removesuffix(".gz")
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
        f"({' '.join(TABLE_SUFFIXES)}), optionally .gz"
    )


def read_records(
    path: str | os.PathLike, kind: str, column: str | None = None, id_column: str | None = None
) -> list[Record]:
    """Every record of an input file, in file order, ready for `kind`'s tokenizer.

    Args:
        path: the input file.
        kind: the model's tokenizer kind ("dna", "protein", "smiles"): protein FASTA records lose gaps
            and a final `*` as in training; SMILES are checked and canonicalised with RDKit.
        column: table column holding the sequences or SMILES (exact name); auto-detected if None.
        id_column: table column holding the ids (exact name); auto-detected if None, else line numbers.

    Raises:
        InputError: one line naming the file and, where there is one, the record: missing or empty file,
            unknown extension, missing column, invalid SMILES, empty sequence.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    fmt = input_format(path)
    if fmt != "table" and (column is not None or id_column is not None):
        raise InputError(f"{path}: --column and --id-column apply to CSV/TSV tables, not to {fmt} files")
    if fmt == "fasta":
        records = [Record(name, header, seq) for name, header, seq in read_fasta_records(path)]
        if kind == "protein":
            records = [_cleaned(path, r) for r in records]
    elif fmt == "alignment":
        records = [
            Record(r.name, r.name, r.sequence) for family in read_protein_file(path) for r in family.records
        ]
    elif fmt == "smiles":
        records = _smiles_file(path)
    else:
        records = _table(path, kind, column, id_column)
    if not records:
        raise InputError(f"{path}: empty file, no records")
    if kind == "smiles":
        records = [_canonical(str(path), r) for r in records]
    return records


def records_from_sequences(sequences: Sequence[str] | Mapping[str, str], kind: str) -> list[Record]:
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
    if kind == "smiles":
        records = [_canonical("input", r) for r in records]
    return records


def safe_unique_ids(names: Sequence[str]) -> list[str]:
    """Ids safe in file names, HDF5 paths and shells, unique in order of appearance.

    Every character outside `A-Za-z0-9._-` becomes `_` (so `sp|P69905|HBA_HUMAN` is
    `sp_P69905_HBA_HUMAN`), a leading `.` too (no hidden files), an empty id becomes `record`. The
    second and later copies of an id get `_2`, `_3`, ... (skipping any that another record already has).
    """
    safe = [_UNSAFE.sub("_", name).lstrip(".") or "record" for name in names]
    taken = set(safe)
    seen: set[str] = set()
    out = []
    for name in safe:
        unique, k = name, 1
        while unique in seen or (unique != name and unique in taken):
            k += 1
            unique = f"{name}_{k}"
        seen.add(unique)
        out.append(unique)
    return out


def _cleaned(path: Path, record: Record) -> Record:
    seq = clean_sequence(record.sequence)
    if not seq:
        raise InputError(f"{path}: record {record.name!r}: empty sequence (nothing left after removing gaps)")
    return Record(record.name, record.header, seq)


def _canonical(source: str, record: Record) -> Record:
    smiles = canonical_smiles(record.sequence) if record.sequence else None
    if smiles is None:
        raise InputError(f"{source}: record {record.name!r}: invalid SMILES {record.sequence[:60]!r} (RDKit)")
    return Record(record.name, record.header, smiles)


def _text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115
    # newline="" lets the csv module see quoted line breaks; utf-8-sig drops a spreadsheet's BOM.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _smiles_file(path: Path) -> list[Record]:
    """SMILES lines through biolm.data.chem's reader; the name is the rest of the line, if any."""
    smiles = list(iter_smiles_records(path))
    with _text(path) as handle:
        lines = handle.read().splitlines()
    records = []
    for number, text in smiles:
        rest = lines[number - 1].strip()[len(text) :].strip()
        name = rest.split()[0] if rest else f"line_{number}"
        records.append(Record(name, rest or name, text))
    return records


def _pick(
    header: list[str], wanted: str | None, candidates: Sequence[str], path: Path, option: str
) -> int | None:
    if wanted is not None:
        if wanted in header:
            return header.index(wanted)
        raise InputError(f"{path}: no column {wanted!r} ({option}); columns are {', '.join(header)}")
    lowered = [h.strip().lower() for h in header]
    for name in candidates:
        if name in lowered:
            return lowered.index(name)
    return None


def _table(path: Path, kind: str, column: str | None, id_column: str | None) -> list[Record]:
    delimiter = "," if path.name.lower().removesuffix(".gz").endswith(".csv") else "\t"
    try:
        with _text(path) as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: empty file, no header")
            # A SMILES model looks for SMILES columns first, other models for sequence columns.
            names = SMILES_COLUMN_NAMES + SEQUENCE_COLUMN_NAMES if kind == "smiles" else SEQUENCE_COLUMN_NAMES
            seq_col = _pick(header, column, names, path, "--column")
            if seq_col is None:
                raise InputError(
                    f"{path}: no sequence column found among {', '.join(header)}; choose one with --column "
                    f"(looked for {', '.join(dict.fromkeys(names))}, any case)"
                )
            id_col = _pick(header, id_column, ID_COLUMN_NAMES, path, "--id-column")
            records = []
            for row in reader:
                if not row:
                    continue
                line = reader.line_num
                name = row[id_col].strip() if id_col is not None and id_col < len(row) else f"line_{line}"
                seq = row[seq_col].strip() if seq_col < len(row) else ""
                if not seq:
                    raise InputError(
                        f"{path}: record {name!r} (line {line}): empty {header[seq_col]!r} value"
                    )
                records.append(Record(name, name, seq))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path}: cannot read ({err})") from None
    return records
