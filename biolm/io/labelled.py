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

import os
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from biolm.errors import ArgumentError, InputError
from biolm.io.columns import pick_column
from biolm.io.fasta import iter_fasta
from biolm.io.files import base_name, input_file
from biolm.io.smiles import SMILES_COLUMN_NAMES, canonical_smiles, warn_skipped
from biolm.io.tables import cell, read_table

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
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".faa")  # read as tables with key=value header fields
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


def _is_fasta(path: Path) -> bool:
    return base_name(path).endswith(FASTA_SUFFIXES)


def _read_fasta(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A FASTA file as a table: `id`, `sequence`, then one column per `key=value` of the headers.

    A record `>seq7 label=1 split=train` gives the row (seq7, its sequence, 1, train); its line is
    the header's.
    """
    records: list[tuple[int, str, dict[str, str], str]] = []
    keys: list[str] = []
    for record in iter_fasta(path):
        if not record.name:
            raise InputError(f"{path}: line {record.line}: a FASTA header without a record id")
        pairs = dict(f.split("=", 1) for f in record.header.split()[1:] if "=" in f)
        keys += [k for k in pairs if k not in keys]
        records.append((record.line, record.name, pairs, record.sequence))
    if not records:
        raise InputError(f"{path}: empty file, no FASTA record")
    header = ["id", "sequence", *keys]
    rows = [(n, [name, sequence, *(pairs.get(k, "") for k in keys)]) for n, name, pairs, sequence in records]
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
    if task not in TASKS:
        raise ArgumentError(f"{{task}} must be one of {', '.join(TASKS)}, got {task!r}", "task")
    path = input_file(path)
    if _is_fasta(path):
        header, rows = _read_fasta(path)
    else:
        header, rows = read_table(path)
    pick = partial(pick_column, header, path=path)
    seq_i = pick(SEQUENCE_COLUMNS, what="sequence", argument="sequence_column", wanted=sequence_column)
    lab_i = pick(LABEL_COLUMNS, what="label", argument="label_column", wanted=label_column)
    split_i = None
    if split_column != "none":
        split_i = pick(
            SPLIT_COLUMNS,
            what="split",
            argument="split_column",
            wanted=split_column,
            required=split_column is not None,
        )
    lowered = [h.strip().lower() for h in header]
    valid_i = lowered.index("validation") if "validation" in lowered and split_i is not None else None
    if not rows:
        raise InputError(f"{path}: no data rows after the header")
    if smiles is None:
        smiles = header[seq_i].strip().lower() in SMILES_COLUMN_NAMES
    sequences, values, lines, splits = [], [], [], []
    invalid, unlabelled = [], []
    for number, row in rows:
        sequence, value = cell(row, seq_i), cell(row, lab_i)
        if not value:
            unlabelled.append((number, sequence))
            continue
        if smiles:
            sequence = canonical_smiles(sequence) if sequence else None
            if sequence is None:
                invalid.append((number, cell(row, seq_i)))
                continue
        elif not sequence:
            raise InputError(f"{path}: line {number}: empty sequence")
        if split_i is not None:
            raw = cell(row, split_i).lower()
            if raw not in SPLIT_NAMES:
                raise ArgumentError(
                    f"{path}: line {number}: split {cell(row, split_i)!r} in column {header[split_i]!r} is "
                    "not one of train/valid/test ({split_column}=none ignores the column)",
                    "split_column",
                )
            part = SPLIT_NAMES[raw]
            if part == "train" and cell(row, valid_i).lower() in ("true", "1", "yes"):
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
