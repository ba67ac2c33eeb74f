"""Reading protein sequences (Biopython): FASTA, A3M, Stockholm, and directories of family files.

Every reader returns raw, unaligned sequences for language modelling: alignment gaps (`-`, `.`) are
removed and A3M/Stockholm insert columns (lower case) are upper-cased, so each record is the protein
as it occurs in nature. A trailing stop `*` (Prodigal and other gene callers write one) is dropped.
Plain gzip (`.gz`) is read transparently. Errors name the file and, where there is one, the record.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from biolm.errors import InputError

_GZIP_MAGIC = b"\x1f\x8b"
# Files in a family directory that are read; anything else (README, .fai, ...) is skipped.
SEQUENCE_SUFFIXES = (".fasta", ".fa", ".faa", ".fas", ".a3m", ".sto", ".stk", ".stockholm")
_GAPS = str.maketrans("", "", "-.")


@dataclass(frozen=True)
class ProteinRecord:
    """One protein: its record id and its unaligned, upper-case sequence."""

    name: str
    sequence: str


@dataclass
class Family:
    """A set of related proteins (one family file, one Stockholm alignment, or one FASTA file)."""

    name: str
    source: Path
    records: list[ProteinRecord] = field(default_factory=list)


def clean_sequence(text: str) -> str:
    """Unaligned sequence from an aligned/A3M one: drop gaps, whitespace and a final `*`, upper-case."""
    seq = "".join(text.split()).translate(_GAPS).upper()
    return seq[:-1] if seq.endswith("*") else seq


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as handle:
        compressed = handle.read(2) == _GZIP_MAGIC
    # errors="replace": a stray non-UTF-8 byte becomes U+FFFD and is reported as an invalid character
    # of its record, not as a decoding error without a record name.
    if compressed:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _first_line(path: Path) -> str:
    try:
        with _open_text(path) as handle:
            for line in handle:
                line = line.strip().strip("\x00")
                if line and not (line.startswith("#") and not line.upper().startswith("# STOCKHOLM")):
                    return line
    except (OSError, EOFError) as err:
        raise InputError(f"{path}: cannot read ({err})") from None
    return ""


def sniff_format(path: str | os.PathLike) -> str:
    """ "fasta" (also aligned FASTA and A3M) or "stockholm", from the file's first line.

    Raises:
        InputError: missing, empty or of another format.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    first = _first_line(path)
    if not first:
        raise InputError(f"{path}: empty file, no protein sequences")
    if first.upper().startswith("# STOCKHOLM"):
        return "stockholm"
    if first.startswith(">"):
        return "fasta"
    raise InputError(f"{path}: not FASTA, A3M or Stockholm (the first line starts with {first[:20]!r})")


def _fasta_lines(path: Path) -> Iterator[str]:
    # A3M files from HHblits/ColabFold may open with a '#' line and end with NUL bytes; Biopython's
    # FASTA parser rejects both, so they are removed here.
    with _open_text(path) as handle:
        started = False
        for line in handle:
            if not started:
                if not line.strip() or line.startswith("#"):
                    continue
                started = True
            line = line.replace("\x00", "")
            if line.strip():  # Biopython's parser indexes line[0]
                yield line


def _records(path: Path, fmt: str) -> Iterator[list[tuple[str, str]]]:
    """[(record id, raw sequence)] per alignment (Stockholm) or per file (FASTA, A3M)."""
    from Bio import AlignIO
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    try:
        if fmt == "fasta":
            yield [
                (title.split()[0] if title.strip() else "", seq)
                for title, seq in SimpleFastaParser(_fasta_lines(path))
            ]
        else:
            with _open_text(path) as handle:
                for alignment in AlignIO.parse(handle, "stockholm"):
                    yield [(r.id, str(r.seq)) for r in alignment]
    except ValueError as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: malformed {fmt} file: {message}") from None
    except (OSError, EOFError) as err:  # e.g. a truncated or corrupt gzip file
        raise InputError(f"{path}: cannot read the file ({type(err).__name__}: {err})") from None


def _clean_records(path: Path, raw: list[tuple[str, str]]) -> list[ProteinRecord]:
    records = []
    for index, (name, text) in enumerate(raw):
        name = name or f"#{index + 1}"
        seq = clean_sequence(text)
        if not seq:
            raise InputError(f"{path}: record {name!r}: empty sequence (nothing left after removing gaps)")
        records.append(ProteinRecord(name, seq))
    return records


def read_protein_file(path: str | os.PathLike) -> list[Family]:
    """The families of one file: a FASTA/A3M file is one family, a Stockholm file one per alignment.

    Raises:
        InputError: missing, empty, malformed file, or a record with an empty sequence.
    """
    path = Path(path)
    fmt = sniff_format(path)
    stem = path.name.split(".")[0]
    families = []
    for index, raw in enumerate(_records(path, fmt)):
        if not raw:
            continue
        family_name = stem if index == 0 else f"{stem}#{index + 1}"
        families.append(Family(family_name, path, _clean_records(path, raw)))
    if not families:
        raise InputError(f"{path}: no protein sequences")
    return families


def is_sequence_file(path: Path) -> bool:
    name = path.name.lower()
    name = name[:-3] if name.endswith(".gz") else name
    return path.is_file() and not path.name.startswith(".") and name.endswith(SEQUENCE_SUFFIXES)


def read_families(path: str | os.PathLike) -> list[Family]:
    """Families from a file (see `read_protein_file`) or a directory of family files.

    In a directory every file whose name ends in one of `SEQUENCE_SUFFIXES` (optionally `.gz`) is read,
    in name order, and all its records form one family named after the file.

    Raises:
        InputError: as `read_protein_file`, or a directory without sequence files.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if is_sequence_file(p))
        if not files:
            raise InputError(
                f"{path}: no sequence files in directory (expected names ending in "
                f"{', '.join(SEQUENCE_SUFFIXES)}, optionally .gz)"
            )
        families = []
        for file in files:
            records = [r for family in read_protein_file(file) for r in family.records]
            families.append(Family(file.name.split(".")[0], file, records))
        return families
    return read_protein_file(path)
