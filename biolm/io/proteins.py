"""Reading protein sequences: FASTA, A3M, Stockholm (Biopython), and directories of family files.

Every reader returns raw, unaligned sequences for language modelling: alignment gaps (`-`, `.`) are
removed and A3M/Stockholm insert columns (lower case) are upper-cased, so each record is the protein
as it occurs in nature. A trailing stop `*` (Prodigal and other gene callers write one) is dropped.
Gzip is read transparently (`biolm.io.files`). Errors name the file and, where there is one, the record.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from biolm.errors import InputError
from biolm.io.fasta import iter_fasta
from biolm.io.files import READ_ERRORS, base_name, input_file, is_regular_file, open_text

# Files in a family directory that are read; anything else (README, .fai, ...) is skipped.
SEQUENCE_SUFFIXES = (".fasta", ".fa", ".faa", ".fas", ".a3m", ".sto", ".stk", ".stockholm")
STOCKHOLM_SUFFIXES = (".sto", ".stk", ".stockholm")
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


def _first_line(path: Path) -> str:
    try:
        with open_text(path) as handle:
            for line in handle:
                line = line.strip().strip("\x00")
                if line and not (line.startswith("#") and not line.upper().startswith("# STOCKHOLM")):
                    return line
    except READ_ERRORS as err:
        raise InputError(f"{path}: cannot read ({err})") from None
    return ""


def sniff_format(path: str | os.PathLike) -> str:
    """ "fasta" (also aligned FASTA and A3M) or "stockholm", from the file's first line (from the name
    for a pipe or device, which can be read only once).

    Raises:
        InputError: missing, empty or of another format.
    """
    path = input_file(path)
    if not is_regular_file(path):
        # A pipe (`<(zcat ...)`) can be read only once: the reader that follows needs that one read.
        return "stockholm" if base_name(path).endswith(STOCKHOLM_SUFFIXES) else "fasta"
    first = _first_line(path)
    if not first:
        raise InputError(f"{path}: empty file, no protein sequences")
    if first.upper().startswith("# STOCKHOLM"):
        return "stockholm"
    if first.startswith(">"):
        return "fasta"
    raise InputError(f"{path}: not FASTA, A3M or Stockholm (the first line starts with {first[:20]!r})")


def iter_alignments(path: str | os.PathLike, fmt: str | None = None) -> Iterator[list[tuple[str, str]]]:
    """[(record id, raw aligned sequence)] per alignment: one per Stockholm alignment, one for a FASTA
    or A3M file. `fmt` ("fasta", "stockholm") is sniffed when None."""
    path = Path(path)
    fmt = fmt or sniff_format(path)
    current: list[tuple[str, str]] = []
    index = 0
    for alignment, name, text in iter_raw_records(path, fmt):
        if alignment != index:
            yield current
            current, index = [], alignment
        current.append((name, text))
    yield current


def iter_raw_records(path: Path, fmt: str) -> Iterator[tuple[int, str, str]]:
    """(alignment number, record id, raw sequence) of every record, one at a time: FASTA and A3M are
    streamed record by record, Stockholm alignment by alignment (alignment number 0, 1, ...).

    Raises:
        InputError: malformed or unreadable (e.g. truncated gzip) file, naming it.
    """
    from Bio import AlignIO

    if fmt == "fasta":
        for record in iter_fasta(path):
            yield 0, record.name, record.sequence
        return
    try:
        with open_text(path) as handle:
            for index, alignment in enumerate(AlignIO.parse(handle, "stockholm")):
                for r in alignment:
                    yield index, r.id, str(r.seq)
    except InputError:
        raise
    except ValueError as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: malformed {fmt} file: {message}") from None
    except READ_ERRORS as err:  # e.g. a truncated or corrupt gzip file
        raise InputError(f"{path}: cannot read the file ({type(err).__name__}: {err})") from None


def iter_records(path: str | os.PathLike) -> Iterator[tuple[int, ProteinRecord]]:
    """(alignment number, cleaned record) of every record of a FASTA/A3M/Stockholm file, streamed.

    Raises:
        InputError: as `sniff_format` and `iter_raw_records`, or a record with an empty sequence.
    """
    path = Path(path)
    fmt = sniff_format(path)
    for number, (alignment, name, text) in enumerate(iter_raw_records(path, fmt)):
        yield alignment, _clean_record(path, name or f"#{number + 1}", text)


def _clean_record(path: Path, name: str, text: str) -> ProteinRecord:
    seq = clean_sequence(text)
    if not seq:
        raise InputError(f"{path}: record {name!r}: empty sequence (nothing left after removing gaps)")
    return ProteinRecord(name, seq)


def family_name(path: Path, alignment: int = 0) -> str:
    """`PF00001` for `PF00001.fasta.gz`; `stem#k` for the k-th alignment (k >= 2) of a Stockholm file."""
    stem = path.name.split(".")[0]
    return stem if alignment == 0 else f"{stem}#{alignment + 1}"


def read_protein_file(path: str | os.PathLike) -> list[Family]:
    """The families of one file: a FASTA/A3M file is one family, a Stockholm file one per alignment.

    Raises:
        InputError: missing, empty, malformed file, or a record with an empty sequence.
    """
    path = Path(path)
    families: dict[int, Family] = {}
    for alignment, record in iter_records(path):
        if alignment not in families:
            families[alignment] = Family(family_name(path, alignment), path)
        families[alignment].records.append(record)
    if not families:
        raise InputError(f"{path}: no protein sequences")
    return list(families.values())


def is_sequence_file(path: Path) -> bool:
    """A protein file of a family directory (by suffix; hidden files are not)."""
    return path.is_file() and not path.name.startswith(".") and base_name(path).endswith(SEQUENCE_SUFFIXES)


def family_files(path: str | os.PathLike) -> list[Path]:
    """The files of a corpus: every sequence file of a directory (see `read_families`), in name order,
    or the file itself.

    Raises:
        InputError: a missing path, or a directory without sequence files.
    """
    path = Path(path)
    if not path.is_dir():
        return [input_file(path)]
    files = sorted(p for p in path.iterdir() if is_sequence_file(p))
    if not files:
        raise InputError(
            f"{path}: no sequence files in directory (expected names ending in "
            f"{', '.join(SEQUENCE_SUFFIXES)}, optionally .gz)"
        )
    return files


def iter_corpus(path: str | os.PathLike) -> Iterator[tuple[str, Path, ProteinRecord]]:
    """(family name, file, record) of every record of a file or directory, streamed in order: in a
    directory each file is one family; a file is one family, or one per Stockholm alignment.

    Raises:
        InputError: as `family_files` and `iter_records`, or a file without any record.
    """
    path = Path(path)
    directory = path.is_dir()
    for file in family_files(path):
        empty = True
        for alignment, record in iter_records(file):
            empty = False
            yield family_name(file, 0 if directory else alignment), file, record
        if empty:
            raise InputError(f"{file}: no protein sequences")


def read_families(path: str | os.PathLike) -> list[Family]:
    """Families from a file (see `read_protein_file`) or a directory of family files, in memory.

    In a directory every file whose name ends in one of `SEQUENCE_SUFFIXES` (optionally `.gz`) is read,
    in name order, and all its records form one family named after the file. Training reads the same
    families without holding them (`biolm.data.protein.ProteinCorpus`).

    Raises:
        InputError: as `read_protein_file`, or a directory without sequence files.
    """
    families: dict[tuple[str, Path], Family] = {}
    for name, file, record in iter_corpus(path):
        families.setdefault((name, file), Family(name, file)).records.append(record)
    return list(families.values())
