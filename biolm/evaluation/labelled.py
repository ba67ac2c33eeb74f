"""Reading a labelled table (CSV/TSV, optionally gzipped): sequences, labels and an optional split.

FASTA files (`.fa`, `.fasta`, `.fna`, `.faa`, optionally gzipped) are read as a table too, with the
labels in `key=value` fields of each header: `>seq7 label=1 split=train`.

Columns are named or auto-detected (case-insensitive): the sequence column among `SEQUENCE_COLUMNS`,
the label among `LABEL_COLUMNS`, the split among `SPLIT_COLUMNS` (FLIP's `set` with its boolean
`validation` column, MoleculeACE's `split`). SMILES are checked and canonicalised by RDKit as the
training readers do (`biolm.data.chem`): an invalid one is skipped and counted in one warning naming
the file and lines. A row with an empty label is skipped the same way (e.g. Tox21's missing labels).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import warnings
import zlib
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from biolm.data.chem import SMILES_COLUMN_NAMES, canonical_smiles, warn_skipped
from biolm.errors import InputError

SEQUENCE_COLUMNS = ("sequence", "seq", "sequences", *SMILES_COLUMN_NAMES, "mutated_sequence")
LABEL_COLUMNS = ("label", "labels", "target", "y", "score", "class", "activity", "dms_score")
SPLIT_COLUMNS = ("split", "set", "fold")
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "dev": "valid",
    "test": "test",
    "testing": "test",
}
TASKS = ("auto", "classification", "regression")
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".faa")
MAX_CLASSES = 10  # integer labels with more distinct values than this are read as a regression target


class EvalDataWarning(UserWarning):
    """Rows of a labelled file were skipped (empty label)."""


@dataclass
class LabelledData:
    """The usable rows of a labelled file, in file order.

    Attributes:
        source: the file read.
        sequences: sequence (or canonical SMILES) of each row.
        labels: [N] class index (int64) for classification, value (float64) for regression.
        lines: 1-based line number of each row in `source`.
        task: "classification" or "regression".
        classes: the class names (label i is `classes[i]`); None for regression.
        split: [N] "train" / "valid" / "test" from the file's split column, or None.
        is_smiles: whether the sequences are SMILES (enables the scaffold split).
        columns: the (sequence, label, split) column names used.
    """

    source: str
    sequences: list[str]
    labels: np.ndarray
    lines: list[int]
    task: str
    classes: list[str] | None = None
    split: np.ndarray | None = None
    is_smiles: bool = False
    columns: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sequences)


def _open(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _pick(header: list[str], wanted: str | None, known: tuple[str, ...], what: str, option: str, path) -> int:
    if wanted is not None:
        if wanted in header:
            return header.index(wanted)
        raise InputError(f"{path}: no {what} column {wanted!r} ({option}); columns are {header}")
    lowered = [h.strip().lower() for h in header]
    for name in known:
        if name in lowered:
            return lowered.index(name)
    raise InputError(
        f"{path}: no {what} column found among {header}; name it with {option} "
        f"(looked for {', '.join(known)}, any case)"
    )


def _cell(row: list[str], i: int | None) -> str:
    """The stripped cell i of a row; "" for no column or a short row."""
    return row[i].strip() if i is not None and i < len(row) else ""


def _is_fasta(path: Path) -> bool:
    return path.name.lower().removesuffix(".gz").endswith(FASTA_SUFFIXES)


def _read_table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, cells)]) of a CSV/TSV file; blank lines are not rows."""
    delimiter = "," if path.name.lower().removesuffix(".gz").endswith(".csv") else "\t"
    with _open(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise InputError(f"{path}: empty file, no header")
        return header, [(reader.line_num, row) for row in reader if row and any(c.strip() for c in row)]


def _read_fasta(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A FASTA file as a table: `id`, `sequence`, then one column per `key=value` of the headers.

    A record `>seq7 label=1 split=train` gives the row (seq7, its sequence, 1, train); its line is
    the header's.
    """
    records: list[tuple[int, str, dict[str, str], list[str]]] = []
    keys: list[str] = []
    with _open(path) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if line.startswith(">"):
                if not line[1:].split():
                    raise InputError(f"{path}: line {number}: a FASTA header without a record id")
                name, *fields = line[1:].split()
                pairs = dict(f.split("=", 1) for f in fields if "=" in f)
                keys += [k for k in pairs if k not in keys]
                records.append((number, name, pairs, []))
            elif line and not line.startswith(";"):
                if not records:
                    raise InputError(f"{path}: line {number}: sequence before the first '>' header")
                records[-1][3].append(line)
    if not records:
        raise InputError(f"{path}: empty file, no FASTA record")
    header = ["id", "sequence", *keys]
    rows = [
        (n, [name, "".join(parts), *(pairs.get(k, "") for k in keys)]) for n, name, pairs, parts in records
    ]
    return header, rows


def detect_task(values: list[str]) -> str:
    """The task of raw labels: classification for text or few distinct integers, else regression."""
    try:
        numbers = np.array([float(v) for v in values])
    except ValueError:
        return "classification"
    is_integer = bool(np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)))
    return "classification" if is_integer and len(set(numbers.tolist())) <= MAX_CLASSES else "regression"


def _encode_labels(values: list[str], task: str, lines: list[int], path) -> tuple[np.ndarray, list | None]:
    if task == "regression":
        out = np.empty(len(values))
        for i, value in enumerate(values):
            try:
                out[i] = float(value)
            except ValueError:
                out[i] = np.nan
            if not np.isfinite(out[i]):
                raise InputError(
                    f"{path}: line {lines[i]}: label {value!r} is not a finite number (regression task)"
                )
        return out, None
    # Numeric class names sort numerically (0, 1, 2 ... 10), text ones alphabetically.
    try:
        keyed = {v: float(v) for v in set(values)}
        classes = sorted(keyed, key=keyed.get)
    except ValueError:
        classes = sorted(set(values))
    if len(classes) < 2:
        raise InputError(f"{path}: every label is {classes[0]!r}; classification needs two classes or more")
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in values], dtype=np.int64), classes


def read_labelled(
    path: str | os.PathLike,
    *,
    sequence_column: str | None = None,
    label_column: str | None = None,
    split_column: str | None = None,
    task: str = "auto",
    smiles: bool | None = None,
) -> LabelledData:
    """Read a labelled CSV/TSV file.

    Args:
        path: `.csv`, `.tsv` or `.tab`, or FASTA with `key=value` header fields; optionally `.gz`.
        sequence_column: exact name of the sequence column; auto-detected when None.
        label_column: exact name of the label column; auto-detected when None.
        split_column: exact name of a split column; auto-detected when None, "none" to ignore it.
        task: "auto", "classification" or "regression".
        smiles: whether sequences are SMILES; None: when the sequence column has a SMILES name.

    Raises:
        InputError: a missing/empty file, missing columns, bad labels or split values, naming the line.
    """
    path = Path(path)
    if task not in TASKS:
        raise InputError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        header, rows = _read_fasta(path) if _is_fasta(path) else _read_table(path)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path}: cannot read ({err})") from None
    seq_i = _pick(header, sequence_column, SEQUENCE_COLUMNS, "sequence", "--sequence-column", path)
    lab_i = _pick(header, label_column, LABEL_COLUMNS, "label", "--label-column", path)
    split_i = None
    if split_column != "none":
        try:
            split_i = _pick(header, split_column, SPLIT_COLUMNS, "split", "--split-column", path)
        except InputError:
            if split_column is not None:
                raise
    lowered = [h.strip().lower() for h in header]
    valid_i = lowered.index("validation") if "validation" in lowered and split_i is not None else None
    if not rows:
        raise InputError(f"{path}: no data rows after the header")
    if smiles is None:
        smiles = header[seq_i].strip().lower() in SMILES_COLUMN_NAMES
    sequences, values, lines, splits = [], [], [], []
    invalid, unlabelled = [], []
    for number, row in rows:
        cell = partial(_cell, row)
        sequence, value = cell(seq_i), cell(lab_i)
        if not value:
            unlabelled.append((number, sequence))
            continue
        if smiles:
            sequence = canonical_smiles(sequence) if sequence else None
            if sequence is None:
                invalid.append((number, cell(seq_i)))
                continue
        elif not sequence:
            raise InputError(f"{path}: line {number}: empty sequence")
        if split_i is not None:
            raw = cell(split_i).lower()
            if raw not in SPLIT_NAMES:
                raise InputError(
                    f"{path}: line {number}: split {cell(split_i)!r} in column {header[split_i]!r} is "
                    f"not one of train/valid/test (--split-column none ignores the column)"
                )
            part = SPLIT_NAMES[raw]
            if part == "train" and cell(valid_i).lower() in ("true", "1", "yes"):
                part = "valid"  # FLIP marks its validation rows inside the training set
            splits.append(part)
        sequences.append(sequence)
        values.append(value)
        lines.append(number)
    if invalid:
        warn_skipped(path, "invalid SMILES", invalid, len(rows))
    if unlabelled:
        shown = ", ".join(str(n) for n, _ in unlabelled[:5]) + (", ..." if len(unlabelled) > 5 else "")
        warnings.warn(
            f"{path}: skipped {len(unlabelled)} of {len(rows)} rows with an empty label (lines {shown})",
            EvalDataWarning,
            stacklevel=2,
        )
    if not sequences:
        raise InputError(f"{path}: no usable row ({len(rows)} rows read)")
    if task == "auto":
        task = detect_task(values)
    labels, classes = _encode_labels(values, task, lines, path)
    return LabelledData(
        source=str(path),
        sequences=sequences,
        labels=labels,
        lines=lines,
        task=task,
        classes=classes,
        split=np.array(splits) if split_i is not None else None,
        is_smiles=bool(smiles),
        columns={
            "sequence": header[seq_i],
            "label": header[lab_i],
            "split": header[split_i] if split_i is not None else None,
        },
    )
