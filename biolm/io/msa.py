"""Multiple sequence alignments reduced to the query's match columns (A3M, aligned FASTA, Stockholm).

Match columns: A3M upper-case letters and `-` (lower-case inserts and `.` are dropped); for aligned
FASTA and Stockholm, the columns where the query (the first record) has a residue.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biolm.errors import InputError
from biolm.io.proteins import clean_sequence, iter_raw_records, sniff_format

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
GAP_CODE = 255  # code of a gap or a non-standard letter in the [N, L] uint8 alignment
_CODES = np.full(256, GAP_CODE, dtype=np.uint8)
_CODES[np.frombuffer(AMINO_ACIDS.encode(), dtype=np.uint8)] = np.arange(20, dtype=np.uint8)


@dataclass
class Alignment:
    """An MSA reduced to the query's match columns.

    Attributes:
        source: the file.
        names: record ids, query first.
        rows: [N] match-column strings of one width, upper case, `-` for a gap.
        sequences: [N] unaligned full sequences (inserts included, gaps removed, upper case).
        query_start: 1-based position in the wild type of the query's first match column (set by
            `check_query`; 1 until then).
    """

    source: str
    names: list[str]
    rows: list[str]
    sequences: list[str]
    query_start: int = 1

    @property
    def query(self) -> str:
        """The query's residues at its match columns."""
        return self.rows[0].replace("-", "")

    def codes(self) -> np.ndarray:
        """[N, L] uint8: 0-19 for the 20 amino acids, 255 for gaps and other letters."""
        text = "".join(self.rows).encode()
        return _CODES[np.frombuffer(text, dtype=np.uint8)].reshape(len(self.rows), -1)


def _match_columns(raw: list[tuple[str, str]], path: Path) -> list[str]:
    """Match-column strings of raw aligned rows (A3M inserts dropped, then the query's gap columns)."""
    a3m = any(c.islower() or c == "." for _, text in raw for c in text)
    rows = []
    for _, text in raw:
        text = "".join(text.split())
        rows.append("".join(c for c in text if not (c.islower() or c == ".")) if a3m else text.upper())
    width = len(rows[0])
    for (name, _), row in zip(raw, rows, strict=True):
        if len(row) != width:
            raise InputError(
                f"{path}: record {name!r}: {len(row)} aligned columns, but the query has {width} "
                "(not an alignment: every row needs the query's match columns)"
            )
    keep = [i for i, c in enumerate(rows[0]) if c not in "-."]
    if len(keep) < width:
        rows = ["".join(row[i] for i in keep) for row in rows]
    return [row.replace(".", "-") for row in rows]


def read_alignment(path: str | os.PathLike) -> Alignment:
    """The MSA of `path` (A3M, aligned FASTA or Stockholm, optionally gzipped), query first.

    Raises:
        InputError: one line naming the file (and the record where there is one): missing, empty or
            malformed file, rows of another width, or no usable homolog besides the query.
    """
    path = Path(path)
    fmt = sniff_format(path)
    raw = [
        (name or f"#{number + 1}", text) for number, (_, name, text) in enumerate(iter_raw_records(path, fmt))
    ]
    if not raw:
        raise InputError(f"{path}: no records")
    rows = _match_columns(raw, path)
    if not rows[0]:
        raise InputError(f"{path}: record {raw[0][0]!r}: the query has no residues")
    alignment = Alignment(str(path), [n for n, _ in raw], rows, [clean_sequence(t) for _, t in raw])
    if not any(set(row) - {"-"} for row in rows[1:]):
        raise InputError(
            f"{path}: no usable homologs ({len(rows)} record(s); an MSA needs rows besides the query "
            "with residues in its match columns)"
        )
    return alignment
