"""Streaming FASTA records (plain, aligned, A3M), with the line each starts on.

The parser is lenient where real files differ and strict where a file is not FASTA at all:
- before the first `>`, blank lines and `#` lines are skipped (A3M files from HHblits/ColabFold open
  with a `#` line); any other text there is an error naming its line;
- NUL bytes are dropped (ColabFold pads A3M files with them), `;` lines are comments, whitespace
  inside sequence lines is removed, CRLF and a BOM are read as plain text (`biolm.io.files.open_text`);
- sequences are returned as written (case, gaps `-` `.` and a final `*` kept): what is valid is the
  tokenizer's decision, what is cleaned the caller's (`biolm.io.proteins.clean_sequence`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from biolm.errors import InputError
from biolm.io.files import READ_ERRORS, base_name, input_file, open_text

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".faa", ".fas", ".ffn", ".fsa", ".mfa")


@dataclass(frozen=True)
class FastaRecord:
    """One record: `name` is the header's first word, `header` the whole line after `>`, `line` the
    1-based line of the header."""

    name: str
    header: str
    sequence: str
    line: int


def is_fasta(path: str | os.PathLike) -> bool:
    """Whether the name says FASTA (`FASTA_SUFFIXES`, optionally `.gz`)."""
    return base_name(path).endswith(FASTA_SUFFIXES)


def iter_fasta(path: str | os.PathLike) -> Iterator[FastaRecord]:
    """Every record of a FASTA file, streamed (see the module's notes on what is accepted).

    Raises:
        InputError: a missing or unreadable file (e.g. a truncated gzip), or text before the first
            header that is not a comment; naming the file and line.
    """
    path = input_file(path)
    header: str | None = None
    start, parts = 0, []
    number = 0
    try:
        with open_text(path) as handle:
            for number, raw in enumerate(handle, start=1):
                line = raw.replace("\x00", "").strip()
                if line.startswith(">"):
                    if header is not None:
                        yield _record(header, parts, start)
                    header, start, parts = line[1:].strip(), number, []
                elif not line or line.startswith(";"):
                    continue
                elif header is None:
                    if line.startswith("#"):
                        continue
                    raise InputError(
                        f"{path}: line {number}: not FASTA (text before the first '>' header: {line[:30]!r})"
                    )
                else:
                    parts.append("".join(line.split()))
    except READ_ERRORS as err:
        raise InputError(f"{path}: line {number + 1}: cannot read ({type(err).__name__}: {err})") from None
    if header is not None:
        yield _record(header, parts, start)


def _record(header: str, parts: list[str], line: int) -> FastaRecord:
    words = header.split()
    return FastaRecord(words[0] if words else "", header, "".join(parts), line)


def read_fasta(path: str | os.PathLike) -> list[FastaRecord]:
    """Every record of a FASTA file, in memory, each with a sequence (a header may have no name).

    Raises:
        InputError: as `iter_fasta`, or no record, or a record with an empty sequence.
    """
    records = []
    for index, record in enumerate(iter_fasta(path), start=1):
        if not record.sequence:
            raise InputError(
                f"{path}: record {record.name!r} (number {index}, line {record.line}) has an empty sequence"
            )
        records.append(record)
    if not records:
        raise InputError(f"{path}: no FASTA records (empty file, or no line starts with '>')")
    return records
