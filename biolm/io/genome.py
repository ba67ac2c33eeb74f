"""Opening FASTA files for random access (pyfaidx) with one-line errors for bad input.

pyfaidx reads a genome through a `.fai` index (and a `.gzi` block index for BGZF), built on the first
open and reused afterwards; biolm adds:

- a check that a reused index still describes the file (pyfaidx only compares modification times, so
  a file replaced by an older copy, or an index cut short by a killed build, would be read wrong);
  an index that does not match is rebuilt, with a log line;
- an index in the cache directory (`biolm.io.files.cache_root()`) when the FASTA's own directory
  is not writable (or an index there cannot be rewritten);
- plain gzip (which cannot be read by random access) converted once, with a log line, into a BGZF
  copy in the cache directory, reused while the source is unchanged; so is a file that starts with a
  byte-order mark (UTF-8 or UTF-16, as Windows editors save), decoded to plain UTF-8 on the way;
- a one-line refusal of a pipe or device (`<(zcat ...)`, `/dev/stdin`), which cannot be read by
  random access.
"""

from __future__ import annotations

import codecs
import errno
import gzip
import hashlib
import json
import logging
import os
import re
import struct
import zlib
from pathlib import Path

import pyfaidx

from biolm.errors import InputError
from biolm.io.files import (
    GZIP_MAGIC,
    READ_ERRORS,
    atomic_file,
    cache_root,
    input_file,
    is_regular_file,
    open_binary,
    open_text,
    write_text_atomic,
)

log = logging.getLogger(__name__)

_BGZF_BLOCK = 65536  # most bytes of one BGZF block, compressed or not
_BGZF_EOF = 28  # the empty block that ends a BGZF file
_COPY_CHUNK = 1 << 20


def _is_bgzf(header: bytes) -> bool:
    # BGZF is gzip with an extra field (FLG.FEXTRA) whose subfield id is "BC" (SAM/BAM spec, 4.1).
    return len(header) >= 18 and header[:2] == GZIP_MAGIC and header[3] & 4 and header[12:14] == b"BC"


def _first_char(path: Path) -> str:
    """The first character that is not white space, after any BOM ("" for an empty file)."""
    try:
        with open_text(path) as handle:
            while chunk := handle.read(4096):
                stripped = chunk.lstrip()
                if stripped:
                    return stripped[:1]
    except READ_ERRORS as err:
        raise InputError(f"{path}: cannot read ({err})") from None
    return ""


def _has_bom(path: Path) -> bool:
    try:
        with open_binary(path) as handle:
            head = handle.read(3)
    except READ_ERRORS:
        return False  # a damaged gzip stream: reported where the file is read
    return head.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))


def _key(path: Path) -> str:
    return hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]


def _stamp(path: Path) -> dict:
    stat = path.stat()
    return {"source": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def bgzf_copy(path: Path, *, decode: bool = False) -> Path:
    """A BGZF copy of the plain-gzip FASTA `path` in the cache directory, made once and reused while
    `path` keeps its size and modification time.

    Args:
        decode: copy the text without its BOM, as UTF-8 (a file with a BOM, gzip or not).

    Raises:
        InputError: the gzip stream is truncated or corrupt, or the cache is not writable.
    """
    from Bio import bgzf

    directory = cache_root() / "genomes"
    target = directory / f"{path.name.removesuffix('.gz')}.{_key(path)}.bgz"
    stamp_file = target.with_name(target.name + ".json")
    stamp = _stamp(path)
    try:
        if target.is_file() and json.loads(stamp_file.read_text()) == stamp:
            return target
    except (OSError, ValueError):
        pass
    why = "a byte-order mark (BOM)" if decode else "plain gzip"
    log.info("%s: %s cannot be read by random access; writing a BGZF copy once to %s", path, why, target)
    try:
        with atomic_file(target) as temp:
            source = open_text(path, newline="") if decode else open_binary(path)
            with source, bgzf.BgzfWriter(temp, "wb") as sink:
                while chunk := source.read(_COPY_CHUNK):
                    sink.write(chunk.encode() if decode else chunk)
            for stale in (Path(f"{target}.fai"), Path(f"{target}.gzi")):
                stale.unlink(missing_ok=True)
        write_text_atomic(stamp_file, json.dumps(stamp))
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise InputError(f"{path}: cannot read the gzip file, truncated or corrupt? ({err})") from None
    except OSError as err:  # e.g. the disk is full, or the cache is not writable
        raise InputError(
            f"{path}: plain gzip needs a BGZF copy, but it cannot be written to {directory} ({err}); set "
            "BIOLM_CACHE_DIR, or recompress the file with `bgzip` (htslib)"
        ) from None
    return target


def _cache_index(path: Path) -> tuple[str, str]:
    """(.fai, .gzi) names in the cache directory, for a FASTA whose own directory is not writable."""
    directory = cache_root() / "index"
    directory.mkdir(parents=True, exist_ok=True)
    base = directory / f"{path.name}.{_key(path)}"
    return f"{base}.fai", f"{base}.gzi"


def _index_matches(fasta: pyfaidx.Fasta, path: Path) -> bool:
    """Whether the index pyfaidx read ends where the file does (a stale or cut index does not)."""
    faidx = fasta.faidx
    if not faidx.index:
        return False
    end = max(record.bend for record in faidx.index.values())
    size = path.stat().st_size
    if getattr(faidx, "_bgzf", False):
        blocks = getattr(faidx, "gzi_index", None)
        if not blocks:
            return False
        last = blocks[-1]
        # The last data block starts within one block of the end; the data end lies inside it.
        return (
            last.cstart <= size - _BGZF_EOF <= last.cstart + _BGZF_BLOCK
            and last.ustart <= end <= last.ustart + _BGZF_BLOCK + 2
        )
    if end > size + 2:  # +2: a last line without its newline (LF or CRLF)
        return False
    if size - end > 4096:
        return False
    with open(path, "rb") as handle:
        handle.seek(end)
        return not handle.read().strip()


def _open_checked(path: Path, rebuild: bool, fai: str | None, gzi: str | None) -> pyfaidx.Fasta:
    """pyfaidx with its index at `fai`/`gzi` (None: beside the file), rebuilt if it does not match."""
    options = {
        "as_raw": True,
        "sequence_always_upper": True,
        "rebuild": rebuild,
        "one_based_attributes": False,
        "indexname": fai,
        "gzi_indexname": gzi,
    }
    fasta = pyfaidx.Fasta(str(path), **options)
    if rebuild and not _index_matches(fasta, path):
        fasta.close()
        fai_path = Path(fai or f"{path}.fai")
        log.info("%s: its index %s does not match the file (changed since?); rebuilding it", path, fai_path)
        fai_path.unlink(missing_ok=True)
        Path(gzi or f"{path}.gzi").unlink(missing_ok=True)
        fasta = pyfaidx.Fasta(str(path), **options)
    return fasta


def _is_write_error(err: OSError) -> bool:
    """An index that cannot be written (pyfaidx: "may not be writable"), not a file that cannot be read."""
    return err.errno in (errno.EACCES, errno.EPERM, errno.EROFS) or "may not be writable" in str(err)


def _open_index(path: Path, rebuild: bool) -> pyfaidx.Fasta:
    if not rebuild:
        return _open_checked(path, False, None, None)
    if os.access(path.parent, os.W_OK) or Path(f"{path}.fai").exists():
        try:
            return _open_checked(path, True, None, None)
        except OSError as err:
            if not _is_write_error(err):
                raise
            log.info("%s: cannot write its index beside it (%s); using the cache directory", path, err)
    try:
        fai, gzi = _cache_index(path)
    except OSError as err:
        raise InputError(
            f"{path}: cannot write an index, neither beside the file nor in {cache_root()} ({err}); "
            "set BIOLM_CACHE_DIR"
        ) from None
    return _open_checked(path, True, fai, gzi)


def _explain(path: Path, message: str) -> str:
    """pyfaidx's messages for the two common faults, in biolm's words (file, record, line, fix)."""
    duplicate = re.match(r'Duplicate key "(.*)"', message)
    if duplicate:
        return (
            f"{path}: record {duplicate.group(1)!r} occurs more than once (record ids, the first word of "
            "each header, must be unique)"
        )
    uneven = re.search(r"Inconsistent line found in >(\S*) at line (\d+)", message)
    if uneven:
        return (
            f"{path}: record {uneven.group(1)!r}: line {uneven.group(2)} differs in length from the lines "
            "before it (or is blank); random access needs every line of a record but its last to have "
            "one length: rewrap the file, e.g. `seqkit seq -w 80 in.fa > out.fa`"
        )
    return f"{path}: cannot index FASTA: {message}"


def open_fasta(path: str | os.PathLike, *, rebuild_index: bool = True) -> pyfaidx.Fasta:
    """Open a FASTA file (plain, BGZF, or plain gzip through a BGZF copy) for random access without
    loading it.

    pyfaidx builds a `.fai` index beside the file the first time and reuses it afterwards (see the
    module docstring). Sequences come back upper-case, as plain strings; Windows line ends are fine.

    Args:
        rebuild_index: False uses an existing index as it is (the built-in genome's shipped index).

    Raises:
        InputError: the file is missing, empty, not FASTA, malformed (uneven line lengths), has two
            records with one id, or is a truncated gzip file.
    """
    path = input_file(path)
    if not is_regular_file(path):
        raise InputError(
            f"{path}: a pipe or device, not a regular file: a genome is read by random access; save it to a "
            "file first (gzip is fine)"
        )
    with open(path, "rb") as handle:
        header = handle.read(18)
    if not header:
        raise InputError(f"{path}: empty file, no FASTA records")
    compressed = header[:2] == GZIP_MAGIC
    first = _first_char(path)
    if not first:
        raise InputError(f"{path}: empty file, no FASTA records")
    if first != ">":
        raise InputError(f"{path}: not a FASTA file (the first line does not start with '>')")
    decode = _has_bom(path)
    readable = bgzf_copy(path, decode=decode) if decode or (compressed and not _is_bgzf(header)) else path
    try:
        fasta = _open_index(readable, rebuild_index)
    except (
        pyfaidx.FastaIndexingError,
        pyfaidx.UnsupportedCompressionFormat,
        ValueError,
        OSError,
        EOFError,
        zlib.error,
    ) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(_explain(path, message)) from None
    except struct.error:  # Bio.bgzf reading a block header that the end of the file cuts short
        raise InputError(f"{path}: cannot read: its last BGZF block is cut short (truncated file?)") from None
    except RuntimeError as err:
        # pyfaidx's "unhandled exception during fasta indexing" (blank lines, NULs), or Bio.bgzf's
        # "decompressed to n, not m" (a damaged block)
        entry = re.search(r"at entry (.*?)Please report", str(err))
        if entry is None:
            raise InputError(f"{path}: cannot read, damaged file? ({str(err).strip()[:120]})") from None
        record = f"record {entry.group(1)!r}" if entry.group(1) else "a record"
        raise InputError(
            f"{path}: cannot index FASTA: blank or malformed lines in {record} (pyfaidx cannot index it)"
        ) from None
    if not fasta.keys():
        raise InputError(f"{path}: no FASTA records")
    return fasta
