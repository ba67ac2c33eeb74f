"""CSV and TSV tables, rows with their line numbers (the lines errors name)."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

from biolm.errors import InputError
from biolm.io.files import READ_ERRORS, base_name, input_file, open_text

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
    delimiter or a line break (the line number is then that of the row's last line).

    Raises:
        InputError: a missing or unreadable file, a malformed row; naming the file (and the line).
    """
    path = input_file(path)
    try:
        with open_text(path, newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter_of(path))
            for row in reader:
                if row and any(cell.strip() for cell in row):
                    yield reader.line_num, row
    except csv.Error as err:
        raise InputError(f"{path}: line {reader.line_num}: malformed table row ({err})") from None
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
