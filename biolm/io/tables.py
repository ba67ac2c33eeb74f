"""CSV and TSV tables, rows with their line numbers (the lines errors name)."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

from biolm.errors import InputError
from biolm.io.files import MAX_LINE_CHARS, READ_ERRORS, base_name, bounded_lines, input_file, open_text

TABLE_SUFFIXES = (".csv", ".tsv", ".tab")


def is_table(path: str | os.PathLike) -> bool:
    """Whether the name says CSV or TSV (`.csv`, `.tsv`, `.tab`, optionally `.gz`)."""
    return base_name(path).endswith(TABLE_SUFFIXES)


def delimiter_of(path: str | os.PathLike) -> str:
    """`,` for `.csv` (optionally `.gz`), else a tab."""
    return "," if base_name(path).endswith(".csv") else "\t"


def iter_table(path: str | os.PathLike) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every row that is not blank, the header first, streamed.

    A BOM and CRLF line ends (spreadsheet exports) are read as plain text; quoted fields may hold the
    delimiter or a line break (the line number is then that of the row's last line). A line and a field
    (a quoted one may span lines) are at most `biolm.io.files.MAX_LINE_CHARS` characters long.

    Raises:
        InputError: a missing or unreadable file, a malformed row; naming the file (and the line).
    """
    path = input_file(path)
    # csv's own default (131,072) is below the line limit; the limit is process-wide, so it is only raised.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE_CHARS))
    start = 1  # the first line of the row being read
    try:
        with open_text(path, newline="") as handle:
            # strict: an unclosed quote is an error, not a field that swallows the rest of the file
            reader = csv.reader(bounded_lines(handle, path), delimiter=delimiter_of(path), strict=True)
            for row in reader:
                if row and any(cell.strip() for cell in row):
                    yield reader.line_num, row
                start = reader.line_num + 1
    except csv.Error as err:
        hint = "; a quote that is never closed?" if "end of data" in str(err) else ""
        raise InputError(f"{path}: line {start}: malformed table row ({err}{hint})") from None
    except READ_ERRORS as err:
        raise InputError(f"{path}: cannot read ({err})") from None


def read_table(path: str | os.PathLike) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, cells)]) of a whole table.

    Raises:
        InputError: as `iter_table`, or a file without a header.
    """
    rows = iter_table(path)
    first = next(rows, None)
    if first is None:
        raise InputError(f"{Path(path)}: empty file, no header")
    return first[1], list(rows)


def cell(row: list[str], index: int | None) -> str:
    """The stripped cell `index` of a row; "" for no column or a short row."""
    return row[index].strip() if index is not None and index < len(row) else ""
