"""Streaming FASTA records (plain, aligned, A3M), with the line each starts on.

The parser is lenient where real files differ and strict where a file is not FASTA at all:
- before the first `>`, blank lines and `#` lines are skipped (A3M files from HHblits/ColabFold open
  with a `#` line); any other text there is an error naming its line;
- NUL bytes are dropped (ColabFold pads A3M files with them), `;` lines are comments, whitespace
  inside sequence lines is removed, CRLF and a BOM are read as plain text (`biolm.io.files.open_text`);
- sequences are returned as written (case, gaps `-` `.` and a final `*` kept): what is valid is the
  tokenizer's decision, what is cleaned the caller's (`biolm.io.proteins.clean_sequence`);
- a header (or a line before the first one) is at most `MAX_LINE_CHARS` characters and a record's
  sequence at most `MAX_SEQUENCE_CHARS` (more than the longest chromosome, on one line or many), so a
  binary file or an endless stream ends in an error rather than filling the memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from biolm.errors import InputError
from biolm.io.files import MAX_LINE_CHARS, READ_ERRORS, base_name, input_file, open_text, too_long

FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".faa", ".fas", ".ffn", ".fsa", ".mfa")
# Human chromosome 1 has 248,956,422 bases; a record longer than this is not a sequence.
MAX_SEQUENCE_CHARS = 1 << 28


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
    start, parts, length = 0, [], 0
    number = 0
    in_sequence = False  # whether the line being read is a sequence line (which may be long)
    try:
        with open_text(path) as handle:
            for number, raw, continued in _pieces(handle):
                if continued and not in_sequence:
                    raise InputError(f"{path}: line {number}: {too_long(MAX_LINE_CHARS)}")
                line = raw.replace("\x00", "").strip()
                in_sequence = continued or (header is not None and bool(line) and line[0] not in ">;")
                if in_sequence:
                    parts.append("".join(line.split()))
                    length += len(parts[-1])
                    if length > MAX_SEQUENCE_CHARS:
                        raise InputError(
                            f"{path}: record {_record(header, [], start).name!r} (line {start}): longer than "
                            f"{MAX_SEQUENCE_CHARS:,} characters (an endless stream?)"
                        )
                elif line.startswith(">"):
                    if header is not None:
                        yield _record(header, parts, start)
                    header, start, parts, length = line[1:].strip(), number, [], 0
                elif line and not line.startswith((";", "#")):
                    raise InputError(
                        f"{path}: line {number}: not FASTA (text before the first '>' header: {line[:30]!r})"
                    )
    except READ_ERRORS as err:
        raise InputError(f"{path}: line {number + 1}: cannot read ({type(err).__name__}: {err})") from None
    if header is not None:
        yield _record(header, parts, start)


def _pieces(handle) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, continued) of every line, a line of more than `MAX_LINE_CHARS` characters
    in pieces (`continued`: the piece is not its line's first), so that no line is held whole before
    it is judged."""
    number, continued = 0, False
    # One more than the limit: a line of exactly `MAX_LINE_CHARS` characters keeps its "\n" in one piece.
    while piece := handle.readline(MAX_LINE_CHARS + 1):
        number += not continued
        yield number, piece, continued
        continued = not piece.endswith("\n")


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
