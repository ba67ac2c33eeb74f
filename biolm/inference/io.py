"""Reading sequence files for inference and writing outputs atomically."""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from Bio import SeqIO

from biolm.errors import InputError


def read_fasta(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(id, sequence) of every record, in file order. Gaps ('-', '.') and a final '*' are kept:
    deciding what is valid is the tokenizer's job."""
    return [(record_id, sequence) for record_id, _, sequence in read_fasta_records(path)]


def read_fasta_records(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    """(id, full header line without '>', sequence) of every record, in file order; gzip is read
    transparently. Sequences are kept as written (see `read_fasta`).

    Raises:
        InputError: a missing or empty file, no record, a record with an empty sequence.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    with open(path, "rb") as handle:
        compressed = handle.read(2) == b"\x1f\x8b"
    try:
        with gzip.open(path, "rt") if compressed else open(path) as handle:
            records = [(r.id, r.description, str(r.seq)) for r in SeqIO.parse(handle, "fasta")]
    except (ValueError, UnicodeDecodeError, OSError, EOFError, zlib.error) as err:
        raise InputError(f"{path}: cannot read FASTA ({err})") from None
    if not records:
        raise InputError(f"{path}: no FASTA records (empty file, or no line starts with '>')")
    for index, (record_id, _, sequence) in enumerate(records, start=1):
        if not sequence:
            raise InputError(f"{path}: record {record_id!r} (number {index}) has an empty sequence")
    return records


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it is renamed to `path` only if the block succeeds, so an
    interrupted run never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` and move the result into place."""
    with atomic_output(path) as tmp:
        write(tmp)
    return Path(path)
