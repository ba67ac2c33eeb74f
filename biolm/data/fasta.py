"""Opening FASTA files for random access (pyfaidx) with one-line errors for bad input."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pyfaidx

from biolm.errors import InputError

BUILTIN_DIR = Path(__file__).parent / "builtin"
BUILTIN_GENOME = BUILTIN_DIR / "cdiphtheriae_NCTC11397.fna.gz"

_GZIP_MAGIC = b"\x1f\x8b"


def _is_bgzf(header: bytes) -> bool:
    # BGZF is gzip with an extra field (FLG.FEXTRA) whose subfield id is "BC" (SAM/BAM spec, 4.1).
    return len(header) >= 18 and header[:2] == _GZIP_MAGIC and header[3] & 4 and header[12:14] == b"BC"


def _first_byte(path: Path, compressed: bool) -> bytes:
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as handle:
            while chunk := handle.read(4096):
                stripped = chunk.lstrip()
                if stripped:
                    return stripped[:1]
    except (OSError, EOFError) as err:
        raise InputError(f"{path}: cannot read ({err})") from None
    return b""


def open_fasta(path: str | os.PathLike, *, rebuild_index: bool = True) -> pyfaidx.Fasta:
    """Open a FASTA file (plain or BGZF-compressed) for random access without loading it.

    pyfaidx builds a `.fai` index beside the file the first time and reuses it afterwards.
    Sequences come back upper-case, as plain strings.

    Raises:
        InputError: the file is missing, empty, not FASTA, plain (non-BGZF) gzip, or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    with open(path, "rb") as handle:
        header = handle.read(18)
    if not header:
        raise InputError(f"{path}: empty file, no FASTA records")
    compressed = header[:2] == _GZIP_MAGIC
    if compressed and not _is_bgzf(header):
        raise InputError(
            f"{path}: plain gzip cannot be read by random access; recompress it with `bgzip` "
            "(htslib) or decompress it with `gunzip`"
        )
    first = _first_byte(path, compressed)
    if not first:
        raise InputError(f"{path}: empty file, no FASTA records")
    if first != b">":
        raise InputError(f"{path}: not a FASTA file (the first line does not start with '>')")
    try:
        fasta = pyfaidx.Fasta(
            str(path),
            as_raw=True,
            sequence_always_upper=True,
            rebuild=rebuild_index,
            one_based_attributes=False,
        )
    except (pyfaidx.FastaIndexingError, pyfaidx.UnsupportedCompressionFormat, ValueError, OSError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{path}: cannot index FASTA: {message}") from None
    if not fasta.keys():
        raise InputError(f"{path}: no FASTA records")
    return fasta


def open_builtin_genome() -> pyfaidx.Fasta:
    """The vendored C. diphtheriae chromosome; its shipped index is used as is, never rewritten."""
    return open_fasta(BUILTIN_GENOME, rebuild_index=False)
