"""Where an output may go: the one placement rule of every writer of user outputs.

An output may replace only a previous output of the same kind that biolm wrote:
- a file of the command's own format (FASTA, SMILES, an embedding file by its magic bytes, a manifest,
  an id list), told by its first bytes; an empty file counts as any format;
- a directory that holds nothing, or only what biolm wrote into it: report and model directories carry
  a marker (`MARKER`, listing their files), and a kind may recognise its directories of before the
  marker (`DirectoryKind.recognise`).

It never replaces an input of the same command (compared by resolved path and by inode, so a hard link
or a symlink to an input counts, and a side file such as `OUT.ids.txt` is checked like OUT), never a
directory that holds anything else (the current directory or one above it included), and never a
device, FIFO or socket: a text output is written *into* those (`-o -` and `/dev/stdout` stream to
standard output, `/dev/stderr`, `/dev/fd/N` and `/proc/self/fd/N` to that descriptor, whatever the
shell put behind it; a FIFO's reader gets the samples, `/dev/full` reports a full disk), and an output
that must be a set of files or a directory refuses them. A missing parent directory is created when the
output is written; a parent that cannot be created or written in, a directory where a file is wanted
and a name longer than the file system allows are refused as well.

Every refusal is an `OutputError`, one line naming the path and why. The checks run twice: a command
calls `check_file_output` / `check_directory_output` with its inputs before any work, and the writers
(`output_text`, `output_directory`, the embedding writer) check again, without the inputs, at the
moment they write.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from biolm.errors import OutputError
from biolm.io.files import (
    READ_ERRORS,
    atomic_directory,
    atomic_file,
    disk_full_error,
    open_binary,
    special_kind,
)

# The file biolm writes into every directory output, naming its kind and the files it wrote.
MARKER = ".biolm-output.json"
# Bytes of an existing file read to tell its format.
SNIFF_BYTES = 1 << 16
# Names of standard output: written into, never replaced.
STDOUT_NAMES = ("-", "/dev/stdout", "/proc/self/fd/1", "/dev/fd/1")
# A SMILES as the SMILES writer writes it: bracket atoms, and outside brackets only the organic subset
# (so that a word such as "notes" is not taken for one), bonds, branches and ring closures.
_SMILES_TOKEN = re.compile(r"(?:\[[^\]\s]{1,40}\]|Cl|Br|[BCNOPSFIbcnops*]|[0-9%=#$:/\\.()+\-~@])+")
_ID_LINE = re.compile(r"[A-Za-z0-9._-]+")
_DESCRIPTOR = re.compile(r"/dev/fd/\d+|/proc/(?:self|thread-self|\d+)/fd/\d+")


@dataclass(frozen=True)
class FileKind:
    """A format of file output: its name for messages and a test of an existing file's first bytes
    (gzip already unpacked)."""

    name: str
    sniff: Callable[[bytes], bool]
    streamable: bool = False  # may be written into a device, a FIFO or standard output


def _text_lines(head: bytes) -> list[str] | None:
    if b"\0" in head:
        return None
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # not just a character cut at the end of the sniffed bytes
            return None
        text = head[: err.start].decode("utf-8-sig")
    lines = text.splitlines()
    if len(head) >= SNIFF_BYTES and lines:
        lines = lines[:-1]  # the last line may be cut short
    return [line for line in lines if line.strip()]


def _is_fasta(head: bytes) -> bool:
    lines = _text_lines(head)
    return lines is not None and (not lines or lines[0].lstrip().startswith(">"))


def _is_smiles(head: bytes) -> bool:
    lines = _text_lines(head)
    if lines is None:
        return False
    for line in lines:
        smiles = line.split()[0]
        if not _SMILES_TOKEN.fullmatch(smiles) or not any(c.isalpha() or c == "*" for c in smiles):
            return False
    return True


def _magic(*prefixes: bytes) -> Callable[[bytes], bool]:
    return lambda head: head.startswith(prefixes)


def _is_manifest(head: bytes) -> bool:
    lines = _text_lines(head)
    return lines is not None and bool(lines) and lines[0].split("\t")[:3] == ["row", "id", "header"]


def _is_id_list(head: bytes) -> bool:
    lines = _text_lines(head)
    return lines is not None and all(_ID_LINE.fullmatch(line) for line in lines)


FASTA = FileKind("FASTA file", _is_fasta, streamable=True)
SMILES = FileKind("SMILES file", _is_smiles, streamable=True)
NPY = FileKind(".npy file", _magic(b"\x93NUMPY"))
PARQUET = FileKind("Parquet file", _magic(b"PAR1"))
HDF5 = FileKind("HDF5 file", _magic(b"\x89HDF\r\n\x1a\n"))
# torch.save writes a zip archive (a pickle before torch 1.6).
TORCH = FileKind("torch.save file", _magic(b"PK\x03\x04", b"\x80"))
MANIFEST = FileKind("embedding manifest", _is_manifest)
ID_LIST = FileKind("id list", _is_id_list)


@dataclass(frozen=True)
class DirectoryKind:
    """A kind of directory output: its name for messages, the tag its marker carries, and optionally
    `recognise(directory) -> names`, the files of such a directory written before markers existed
    (None: not one)."""

    name: str
    tag: str
    recognise: Callable[[Path], set[str] | None] | None = None


@dataclass(frozen=True)
class Inputs:
    """The files a command reads, to keep its outputs off them: resolved paths and (device, inode)
    pairs; a directory input (a model directory) brings the entries directly in it."""

    paths: tuple[Path, ...] = ()
    inodes: frozenset[tuple[int, int]] = frozenset()

    @classmethod
    def of(cls, *paths: str | os.PathLike | None) -> Inputs:
        found: dict[Path, None] = {}
        for path in paths:
            if path is None or str(path) == "-":
                continue
            path = Path(path)
            found[_resolved(path)] = None
            if path.is_dir():
                try:
                    for entry in list(os.scandir(path))[:10_000]:
                        found[_resolved(Path(entry.path))] = None
                except OSError:
                    pass
        inodes = set()
        for path in found:
            try:
                info = os.stat(path)
            except OSError:
                continue
            inodes.add((info.st_dev, info.st_ino))
        return cls(tuple(found), frozenset(inodes))

    def input_at(self, path: Path) -> bool:
        """Whether `path` is one of the inputs (the same file by path or by inode)."""
        if _resolved(path) in self.paths:
            return True
        try:
            info = os.stat(path)
        except OSError:
            return False
        return (info.st_dev, info.st_ino) in self.inodes

    def input_within(self, directory: Path) -> Path | None:
        """An input that lies in `directory` (at any depth), or None."""
        root = _resolved(directory)
        for path in self.paths:
            if path == root or root in path.parents:
                return path
        return None


NO_INPUTS = Inputs()


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _through_link(path: Path) -> Path:
    """The file or directory a link at `path` points to (an output is written through a link, as a
    shell's `>` does); `path` itself when it is not a link."""
    return _resolved(path) if os.path.islink(path) else path


def is_stdout(path: str | os.PathLike) -> bool:
    """Whether `path` names standard output (`-`, `/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/1`)."""
    return os.fspath(path) in STDOUT_NAMES


def _is_descriptor(path: Path) -> bool:
    """Whether `path` names an open file descriptor (`/dev/stderr`, `/dev/fd/N`, `/proc/PID/fd/N`): what
    is behind it is the shell's redirection, written into, never replaced through the link."""
    return os.fspath(path) in ("/dev/stderr", "/dev/stdin") or bool(_DESCRIPTOR.fullmatch(os.fspath(path)))


def _special(path: Path) -> str | None:
    """What `path` is when it is a device, FIFO or socket (links followed), else None."""
    try:
        return special_kind(os.stat(path).st_mode)
    except OSError:
        return None


def _head(path: Path) -> bytes:
    try:
        with open_binary(path) as handle:
            return handle.read(SNIFF_BYTES)
    except READ_ERRORS:
        try:
            with open(path, "rb") as handle:
                return handle.read(SNIFF_BYTES)
        except OSError:
            return b"\0"  # unreadable: not provably ours


def _check_names(path: Path) -> None:
    """Every name on the way to `path` fits the file system (a temporary's name is never longer than
    the name it stands for: `files._temp_prefix`)."""
    base = _existing_ancestor(path)
    try:
        name_max = os.pathconf(base, "PC_NAME_MAX")
        path_max = os.pathconf(base, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    for part in path.parts:
        if len(os.fsencode(part)) > name_max:
            raise OutputError(
                f"{path}: the name {part[:40]}... is {len(os.fsencode(part))} bytes long, more than the "
                f"{name_max} the file system allows"
            )
    if len(os.fsencode(os.path.abspath(path))) >= path_max:
        raise OutputError(f"{path}: the path is longer than the {path_max} bytes the file system allows")


def _existing_ancestor(path: Path) -> Path:
    current = Path(os.path.abspath(path)).parent
    while not os.path.lexists(current) and current != current.parent:
        current = current.parent
    return current


def _check_parent(path: Path) -> None:
    """The directory `path` goes into exists or can be made, and can be written in."""
    absolute = Path(os.path.abspath(path))
    ancestor = _existing_ancestor(absolute)
    if not ancestor.is_dir():
        raise OutputError(f"{path}: cannot be created, {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: cannot write in {ancestor} ({_why_unwritable(ancestor)})")


def _why_unwritable(directory: Path) -> str:
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return "a read-only file system"
    except OSError:
        pass
    return "no permission to write there"


def _is_cwd_or_above(path: Path) -> bool:
    target, cwd = _resolved(path), _resolved(Path.cwd())
    return target == cwd or target in cwd.parents


def check_new_directory(path: str | os.PathLike) -> Path:
    """Check that a new directory can be made at `path` (a run directory, which never replaces anything):
    its name fits the file system and the nearest existing directory above it can be written in.

    Raises:
        OutputError: one line naming the path and why.
    """
    path = Path(path)
    _check_names(path)
    _check_parent(path)
    return path


def check_file_output(
    path: str | os.PathLike, kind: FileKind, inputs: Inputs = NO_INPUTS, *, side_of: Path | None = None
) -> Path:
    """Check that a `kind` file may be written at `path` (see the module docstring).

    Args:
        inputs: the command's inputs (`Inputs.of(...)`); none when a writer checks again.
        side_of: the main output when `path` is a side file of it, for messages.

    Returns:
        Where to write: `path`, or the file a link at `path` points to (written through the link, as a
        shell's `>` does, not replacing the link).

    Raises:
        OutputError: one line naming the path and why it cannot be written.
    """
    path = Path(path)
    what = f"{path} (beside {side_of})" if side_of is not None else str(path)
    if is_stdout(path) or _is_descriptor(path):
        if not kind.streamable:
            raise OutputError(
                f"{what}: a {kind.name} cannot be written to a file descriptor; give a file name"
            )
        return path
    if inputs.input_at(path):
        raise OutputError(f"{what}: is an input of this command; writing there would destroy it")
    special = _special(path)
    if special is not None:
        if not kind.streamable:
            raise OutputError(f"{what}: is {special}; a {kind.name} is written as a regular file")
        if special == "a socket":
            raise OutputError(f"{what}: is a socket, which cannot be written as a file")
        if not os.access(path, os.W_OK):
            raise OutputError(f"{what}: no permission to write to {special}")
        return path
    if os.path.isdir(path):
        raise OutputError(f"{what}: is a directory; a {kind.name} is wanted here")
    if os.path.islink(path) and not os.path.exists(path):
        raise OutputError(f"{what}: is a link to a missing file; remove it or write elsewhere")
    path = _through_link(path)
    _check_names(path)
    if os.path.exists(path):
        head = _head(path)
        if head and not kind.sniff(head):
            raise OutputError(
                f"{what}: exists and is not a {kind.name}; biolm replaces only its own earlier output "
                "(remove the file or write elsewhere)"
            )
    _check_parent(path)
    return path


def check_directory_output(path: str | os.PathLike, kind: DirectoryKind, inputs: Inputs = NO_INPUTS) -> Path:
    """Check that a `kind` directory may be written (replaced as a whole) at `path`.

    Returns:
        Where to write: `path`, or the directory a link at `path` points to.

    Raises:
        OutputError: one line naming the path and why: it is or holds an input, it is the current
            directory or above it, a file or device is there, or it holds anything biolm did not write.
    """
    path = Path(path)
    if is_stdout(path) or _is_descriptor(path) or _special(path) is not None:
        raise OutputError(f"{path}: is not a directory; a {kind.name} is written as a directory")
    if _is_cwd_or_above(path):
        raise OutputError(f"{path}: is the current directory or one above it; name a new {kind.name}")
    holds_input = inputs.input_within(path)
    if holds_input is not None:
        which = "is" if holds_input == _resolved(path) else f"holds {holds_input}, which is"
        raise OutputError(f"{path}: {which} an input of this command; writing there would destroy it")
    if os.path.lexists(path) and not os.path.isdir(path):
        target = "a link to nothing" if os.path.islink(path) else "a file"
        raise OutputError(f"{path}: is {target}, not a directory; a {kind.name} is wanted here")
    path = _through_link(path)
    _check_names(path)
    if os.path.isdir(path):
        foreign = _foreign_entries(path, kind)
        if foreign:
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise OutputError(
                f"{path}: holds files biolm did not write as a {kind.name} ({shown}); it would be replaced "
                "as a whole, so remove them or name another directory"
            )
    _check_parent(path)
    return path


def _foreign_entries(directory: Path, kind: DirectoryKind) -> list[str]:
    """The entries of `directory` that are not part of a `kind` output biolm wrote (all of them when it
    is not one)."""
    try:
        names = sorted(entry.name for entry in os.scandir(directory))
    except OSError as err:
        raise OutputError(f"{directory}: cannot be read ({err.strerror or err})") from None
    if not names:
        return []
    ours = _marked_files(directory, kind)
    if ours is None and kind.recognise is not None:
        ours = kind.recognise(directory)
    if ours is None:
        return names
    return [name for name in names if name not in ours and name != MARKER]


def _marked_files(directory: Path, kind: DirectoryKind) -> set[str] | None:
    marker = directory / MARKER
    try:
        if not marker.is_file() or marker.stat().st_size > SNIFF_BYTES:
            return None
        meta = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("kind") != kind.tag or not isinstance(meta.get("files"), list):
        return None
    return {str(name) for name in meta["files"]}


@contextmanager
def output_directory(path: str | os.PathLike, kind: DirectoryKind) -> Iterator[Path]:
    """`atomic_directory` for a `kind` output: checked first (`check_directory_output`), marked with
    `MARKER` listing what the block wrote, and checked again just before it replaces `path`."""
    from biolm import __version__

    path = check_directory_output(path, kind)
    with atomic_directory(path) as staging:
        yield staging
        files = sorted(entry.name for entry in os.scandir(staging))
        meta = {"written_by": f"biolm {__version__}", "kind": kind.tag, "files": files}
        (staging / MARKER).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        check_directory_output(path, kind)


@contextmanager
def output_text(path: str | os.PathLike, kind: FileKind, *, gzipped: bool | None = None) -> Iterator[IO[str]]:
    """A text handle for a `kind` output at `path` (checked first, `check_file_output`).

    A regular file is written to a temporary beside it and renamed into place when the block succeeds
    (`atomic_file`); standard output, a device or a FIFO is written into directly. `gzipped` (default:
    the name ends with `.gz`) compresses a regular file.

    Raises:
        DiskFullError: the disk (or `/dev/full`) is full, naming `path`.
    """
    import gzip

    path = check_file_output(path, kind)
    if is_stdout(path) or _is_descriptor(path) or _special(path) is not None:
        try:
            if is_stdout(path):
                sys.stdout.flush()
                handle = open(sys.stdout.fileno(), "w", encoding="utf-8", closefd=False)
            else:
                handle = open(path, "w", encoding="utf-8")
            with handle:
                yield handle
        except OSError as err:
            raise _write_error(err, path) from err
        return
    gzipped = path.name.endswith(".gz") if gzipped is None else gzipped
    with atomic_file(path) as temp:
        opener = gzip.open(temp, "wt", encoding="utf-8") if gzipped else open(temp, "w", encoding="utf-8")
        with opener as handle:
            yield handle


def _write_error(err: OSError, path: Path) -> Exception:
    full = disk_full_error(err, path)
    if full is not None:
        return full
    if err.errno == errno.EPIPE:
        return OutputError(f"{path}: the reader closed the pipe before everything was written")
    return OutputError(f"{path}: cannot write ({err.strerror or err})")
