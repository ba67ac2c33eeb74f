"""Opening input files and writing output files, for every reader and writer of biolm.

Reading: `open_text` / `open_binary` see through gzip by its magic bytes (not the name: a `.gz` that is
not gzip is read as what it is, and a gzip file without `.gz` is still unpacked), peek rather than seek
(so a FIFO or `/dev/stdin` works), and decode UTF-8 with or without a BOM and UTF-16 with one (as
spreadsheets export). `input_file` turns a missing path, a directory or a dangling link into one
line naming it. `bounded_lines` reads lines of at most `MAX_LINE_CHARS` characters, so that a file
without line breaks (binary, `/dev/zero`, an endless pipe) is an error, not all of the memory.
`regular_file` / `read_bounded` are for files read whole or by random access (a model's files,
checkpoints): a FIFO or a device is refused by name, and a file past its bound is not read.

Writing: `atomic_file` / `write_atomic` / `write_text_atomic` write a hidden temporary file beside the
target and rename it over the target only once it is complete, so a kill, a full disk or an exception
leaves the previous file (or none), never half of one; `atomic_directory` does the same for a
directory written as a whole (a model, a report, a cache entry). Temporary names start with `.` and
contain `.tmp-`, so a stale one left by a killed process is recognisable (`is_temporary`). A full disk
(or a file-size limit) while writing is one line naming the target (`DiskFullError`); `output_stream`
keeps that error for libraries that would report it as their own (torch.save, h5py).
"""

from __future__ import annotations

import codecs
import errno
import gzip
import io
import os
import shutil
import stat
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from biolm.errors import DiskFullError, InputError

GZIP_MAGIC = b"\x1f\x8b"
TEMP_MARK = ".tmp-"
TEMP_NAME_CHARS = 100
# Write errors that are the disk's, not the program's: reported as one line naming the target.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# What a damaged or foreign compressed file raises while it is read.
READ_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile, UnicodeError)
# The longest line read where a line is one record or header (a SMILES line, a table row, a FASTA
# header): real ones are far shorter, and a stream without line breaks (a binary file, /dev/zero, an
# endless pipe) must end in an error instead of filling the memory.
MAX_LINE_CHARS = 1 << 20
COMPRESSED_SUFFIXES = (".gz", ".bgz")


def cache_root() -> Path:
    """Where biolm keeps what it derives from inputs (tokenized corpora, BGZF copies, indexes of
    read-only files): `$BIOLM_CACHE_DIR`, `$XDG_CACHE_HOME/biolm` or `~/.cache/biolm`."""
    if os.environ.get("BIOLM_CACHE_DIR"):
        return Path(os.environ["BIOLM_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "biolm"


def base_name(path: str | os.PathLike) -> str:
    """The lower-case file name without a final `.gz` or `.bgz`: what a file's format is told by."""
    name = Path(path).name.lower()
    for suffix in COMPRESSED_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def is_regular_file(path: str | os.PathLike) -> bool:
    """Whether `path` is a regular file (not a FIFO, `/dev/stdin` or another device): only a regular
    file can be opened a second time or read by random access."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def input_file(path: str | os.PathLike) -> Path:
    """`path` as a `Path`, checked to be something that can be read as a file (a FIFO or a device
    included).

    Raises:
        InputError: missing (or a link to nothing) or a directory, in one line naming it.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    if not path.exists():
        what = "a link to a missing file" if path.is_symlink() else "file not found"
        raise InputError(f"{path}: {what}")
    return path


def open_binary(path: str | os.PathLike) -> IO[bytes]:
    """`path` opened for reading bytes, gzip (and BGZF, which is gzip) unpacked when it starts with
    gzip's magic bytes."""
    raw = io.BufferedReader(io.FileIO(os.fspath(path), "rb"))
    try:
        compressed = raw.peek(2)[:2] == GZIP_MAGIC
    except BaseException:
        raw.close()
        raise
    return gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw


def open_text(path: str | os.PathLike, *, newline: str | None = None, errors: str = "replace") -> IO[str]:
    """`path` opened for reading text (see `open_binary` for gzip).

    UTF-8 is assumed, a UTF-8 BOM is dropped, and a UTF-16 BOM switches to UTF-16. With
    `errors="replace"` a stray byte that is not UTF-8 becomes U+FFFD, so it is reported as an invalid
    character of its record (with the record's name) rather than as a decoding error without one.

    Args:
        newline: as `open`'s; the csv module wants "" (quoted line breaks stay in their field).
        errors: as `open`'s.
    """
    binary = open_binary(path)
    try:
        head = binary.peek(4)[:4] if hasattr(binary, "peek") else b""
    except READ_ERRORS:
        head = b""  # a damaged gzip stream: the reader's first read reports it
    except BaseException:
        binary.close()
        raise
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    encoding = "utf-16" if utf16 else "utf-8-sig"
    return io.TextIOWrapper(binary, encoding=encoding, errors=errors, newline=newline)


def bounded_lines(handle: IO[str], path: str | os.PathLike, limit: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The lines of `handle` (line breaks kept), each read only up to `limit` characters.

    Raises:
        InputError: a line of more than `limit` characters, naming the file and the line.
    """
    number = 0
    # Two more than the limit, so that a line of exactly `limit` characters keeps its "\r\n".
    while line := handle.readline(limit + 2):
        number += 1
        if len(line.rstrip("\r\n")) > limit:
            raise InputError(f"{path}: line {number}: {too_long(limit)}")
        yield line


def too_long(limit: int) -> str:
    """The reason of a line that is too long, for messages."""
    return f"longer than {limit:,} characters (not a text file of records, or a stream without line breaks?)"


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether `path` is a temporary file or directory of `atomic_file` / `atomic_directory`."""
    name = Path(path).name
    return name.startswith(".") and TEMP_MARK in name


def _temp_prefix(target: Path) -> str:
    # At most the first TEMP_NAME_CHARS characters of the name: a temporary's name (prefix, random part,
    # suffix) is then never longer than a name that fits the file system.
    return f".{target.name[:TEMP_NAME_CHARS]}{TEMP_MARK}"


def _permissions(default: int) -> int:
    # mkstemp / mkdtemp make private files; an output is as readable as any file the user creates.
    umask = os.umask(0)
    os.umask(umask)
    return default & ~umask


def sync_directory(directory: str | os.PathLike) -> None:
    """Flush a directory's entries to disk: a rename in it is durable only then (POSIX; a no-op where
    directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def disk_full_error(err: BaseException, target: str | os.PathLike) -> DiskFullError | None:
    """The one-line error of a write to `target` that failed for want of space, else None."""
    if isinstance(err, OSError) and err.errno in NO_SPACE:
        return DiskFullError(f"{target}: cannot write: {os.strerror(err.errno)}")
    return None


class _KeepsWriteError(io.FileIO):
    """A file that remembers the first error of a write, for when a library replaces it with its own."""

    write_error: OSError | None = None

    def write(self, data) -> int:
        try:
            return super().write(data)
        except OSError as err:
            self.write_error = self.write_error or err
            raise


@contextmanager
def output_stream(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """`path` opened for writing bytes (readable and seekable too, as h5py wants); when the block fails
    after a write did, the write's `OSError` is raised instead of what the library made of it (torch.save
    raises a RuntimeError without the errno, h5py a SystemError), so `atomic_file` can tell a full disk."""
    raw = _KeepsWriteError(os.fspath(path), "w+")
    handle = io.BufferedRandom(raw)
    try:
        yield handle
        handle.flush()
    except Exception as err:
        if raw.write_error is not None and not isinstance(err, OSError):
            raise raw.write_error from err
        raise
    finally:
        try:
            handle.close()
        except OSError:
            raw.close()  # buffered bytes that cannot be written: the block's error is the one to see
            if raw.write_error is None:
                raise


@contextmanager
def atomic_file(path: str | os.PathLike, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that add one do not); it is renamed
    to `path` only when the block succeeds, and removed when it fails.

    Args:
        durable: fsync the file and its directory before returning (checkpoints: a power cut keeps
            either the old file or the new one).

    Raises:
        DiskFullError: the disk is full (or the file exceeds the size limit), naming `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The same suffix, so that writers which add one do not (a long "suffix" is part of the name).
    suffix = path.suffix if len(path.suffix) <= 16 else ""
    fd, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=suffix, dir=path.parent)
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        if temp.is_file():
            os.chmod(temp, _permissions(0o666))
            if durable:
                with open(temp, "rb") as handle:
                    os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as err:
        full = disk_full_error(err, path)
        if full is not None:
            raise full from err
        raise
    finally:
        temp.unlink(missing_ok=True)
    if durable:
        sync_directory(path.parent)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object], *, durable: bool = False) -> Path:
    """Call `write(temporary_path)` and move the result to `path` (see `atomic_file`)."""
    with atomic_file(path, durable=durable) as temp:
        write(temp)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return write_atomic(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def replace_directory(staging: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move the complete directory `staging` to `target`, replacing a `target` that exists: the old one
    is renamed aside first and removed only once the new one is in place."""
    staging, target = Path(staging), Path(target)
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)
    return target


def staging_directory(target: str | os.PathLike) -> Path:
    """A new empty temporary directory beside `target`, to be moved there by `replace_directory`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), dir=target.parent))
    os.chmod(staging, _permissions(0o777))
    return staging


@contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory beside `path`; when the block succeeds it replaces `path` as a
    whole (`replace_directory`), when it fails it is removed and `path` is untouched."""
    staging = staging_directory(path)
    try:
        yield staging
        replace_directory(staging, path)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        full = disk_full_error(err, Path(path))
        if full is not None:
            raise full from err
        raise


# What a file that is not a regular file or a directory is, for messages.
SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_kind(mode: int) -> str | None:
    """ "a FIFO (named pipe)", "a character device", ... for a file `mode` of one of those, else None."""
    return next((name for test, name in SPECIAL_FILES if test(mode)), None)


def _kind_of(mode: int) -> str:
    """What a file that is not a regular file is, for messages."""
    if stat.S_ISDIR(mode):
        return "a directory"
    return special_kind(mode) or "not a regular file"


def regular_file(path: str | os.PathLike, what: str, max_bytes: int | None = None) -> Path:
    """`path` checked to be a regular file (links followed) of at most `max_bytes` bytes: for the files
    of a model directory and checkpoints, which are read whole or by random access, so that a FIFO would
    hang the reader and a device (`/dev/zero`) or a huge file would fill the memory.

    Args:
        what: what the file is, for messages ("tokenizer", "checkpoint").

    Raises:
        InputError: missing, not a regular file, or larger than `max_bytes`, in one line naming it.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as err:
        missing = "a link to a missing file" if path.is_symlink() else "missing"
        reason = missing if err.errno == errno.ENOENT else (err.strerror or str(err))
        raise InputError(f"{path}: cannot read the {what} ({reason})") from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{path}: the {what} is {_kind_of(info.st_mode)}, not a regular file")
    if max_bytes is not None and info.st_size > max_bytes:
        raise InputError(
            f"{path}: the {what} is {info.st_size:,} bytes, more than the {max_bytes:,} such a file may have"
        )
    return path


def read_bounded(path: str | os.PathLike, what: str, max_bytes: int) -> bytes:
    """The bytes of the regular file `path` (`regular_file`), read only up to `max_bytes` (+1, so that a
    file that grew after the check is still refused rather than cut short)."""
    path = regular_file(path, what, max_bytes)
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as err:
        raise InputError(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    if len(data) > max_bytes:
        raise InputError(f"{path}: the {what} is more than the {max_bytes:,} bytes such a file may have")
    return data
