"""After sampling: the counts of each post-processing stage as one line, and writing samples atomically
(FASTA, SMILES). What is kept of the samples is the domain's (`biolm.domains.Domain.clean_samples`);
its counts are plain dicts, each count of the stage before it (unique valid molecules, novel unique
ones), so that the CLI can print them and tests can compare them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from biolm.io.outputs import FASTA, SMILES, FileKind, output_text


def format_counts(counts: Mapping[str, int]) -> str:
    """One line for the CLI, each stage with its share of the stage before it, e.g.
    `1,000 generated, 912 valid (91.2%), 850 unique (93.2%), 790 novel (92.9%)`."""
    parts, previous = [], None
    for stage, n in counts.items():
        label = stage.replace("_", "-")
        if previous is None:
            parts.append(f"{n:,} {label}")
        else:
            share = f" ({100.0 * n / previous:.1f}%)" if previous else ""
            parts.append(f"{n:,} {label}{share}")
        previous = n
    return ", ".join(parts)


def _check_field(value: str, what: str, index: int) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} of record {index} must be a string, got {type(value).__name__}")
    if "\n" in value or "\r" in value:
        raise ValueError(f"{what} of record {index} contains a line break: {value[:40]!r}")
    return value


def write_fasta(
    path: str | os.PathLike, records: Iterable[tuple[str, str]] | Mapping[str, str], *, width: int = 0
) -> Path:
    """Write (header, sequence) records as FASTA, atomically (a `.gz` name is gzipped).

    Args:
        path: the output file; its folder is created. `-`, `/dev/stdout`, a FIFO or a device is
            written into (`biolm.io.outputs`); an existing file is replaced only if it is FASTA.
        records: (header, sequence) pairs or a {header: sequence} dict; the header is written after
            `>` as given (an id, optionally followed by a description).
        width: residues per line; 0 (default) writes each sequence on one line.

    Returns:
        `path`. Nothing is left at `path` if writing fails.

    Raises:
        ValueError: an empty header, or a header or sequence with a line break.
        OutputError: `path` is an input, a directory or a file of another format (`biolm.io.outputs`).
    """
    items = list(records.items() if isinstance(records, Mapping) else records)
    lines = []
    for index, (header, sequence) in enumerate(items, start=1):
        _check_field(header, "header", index)
        _check_field(sequence, "sequence", index)
        if not header.strip():
            raise ValueError(f"header of record {index} is empty")
        lines.append(f">{header}\n")
        if width > 0 and sequence:
            lines += [sequence[i : i + width] + "\n" for i in range(0, len(sequence), width)]
        else:
            lines.append(sequence + "\n")
    return _write_lines(path, FASTA, lines)


def write_smiles(path: str | os.PathLike, smiles: Iterable[str], names: Iterable[str] | None = None) -> Path:
    """Write one SMILES per line, optionally followed by a tab and a name, atomically (`.gz` gzipped).

    The file reads back with `biolm.data.chem.read_molecules` (and RDKit's SMILES supplier).

    Raises:
        ValueError: a SMILES that is empty or contains whitespace, a name with a line break, or names
            of another count than the SMILES.
        OutputError: as `write_fasta`'s, for a file that is not SMILES.
    """
    smiles = list(smiles)
    names = None if names is None else list(names)
    if names is not None and len(names) != len(smiles):
        raise ValueError(f"{len(smiles)} SMILES but {len(names)} names")
    lines = []
    for index, text in enumerate(smiles, start=1):
        _check_field(text, "SMILES", index)
        if not text or any(ch.isspace() for ch in text):
            raise ValueError(f"SMILES of record {index} is empty or contains whitespace: {text!r}")
        if names is None:
            lines.append(text + "\n")
        else:
            lines.append(f"{text}\t{_check_field(names[index - 1], 'name', index)}\n")
    return _write_lines(path, SMILES, lines)


def write_samples_as(kind: FileKind, path: str | os.PathLike, samples: Iterable[str]) -> Path:
    """Write generated samples in the format `kind`: SMILES one a line; FASTA as sample_1, sample_2, ..."""
    if kind is SMILES:
        return write_smiles(path, samples)
    return write_fasta(path, [(f"sample_{i}", seq) for i, seq in enumerate(samples, start=1)])


def _write_lines(path: str | os.PathLike, kind, lines: list[str]) -> Path:
    with output_text(path, kind) as handle:
        handle.writelines(lines)
    return Path(path)
