"""A compact, on-disk store of tokenized corpora, so that a large corpus is never held in Python lists.

A corpus (a protein FASTA, a directory of family files, a SMILES file) is read once, record by
record, into a `RaggedStore`: one flat `uint8` array of every record's bytes (token ids, or UTF-8 text
for SMILES) and an `int64` array of offsets (`[n + 1]`, record i is `data[offsets[i]:offsets[i + 1]]`).
Small corpora (source files under `MIN_CACHED_BYTES`) are built in memory; larger ones are written to
a cache entry and memory-mapped, so resident memory does not grow with the corpus: the pages read are
file-backed and the kernel can drop them.

A cache entry is a directory under `cache_root()` named by a hash of the source's resolved path and
of what the bytes depend on (the tokenizer, the reader's options), holding `meta.json`, `data.u8`,
`offsets.npy` and any extra arrays. `meta.json` records the size and modification time of every
source file: an entry whose source changed is rebuilt, one whose source did not is reused. Entries
are built in a temporary directory and renamed into place, so an interrupted build leaves nothing
that a later run could read.

The cache root is `$BIOLM_CACHE_DIR`, else `$XDG_CACHE_HOME/biolm`, else `~/.cache/biolm`.
"""

from __future__ import annotations

import array
import hashlib
import json
import logging
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biolm.errors import DiskFullError, InputError
from biolm.io.files import cache_root, disk_full_error, output_stream, replace_directory, staging_directory

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
# Sources smaller than this are tokenized in memory: the store is already compact, and tests and
# small runs leave nothing behind in the cache.
MIN_CACHED_BYTES = 32 << 20
_DATA, _OFFSETS, _META = "data.u8", "offsets.npy", "meta.json"
_WRITE_BLOCK = 1 << 20


def source_files(path: Path, files: Iterable[Path]) -> list[list[Any]]:
    """[[name relative to `path`, size, mtime_ns]] of each file: what decides whether an entry is stale."""
    out = []
    for file in files:
        stat = file.stat()
        name = file.name if file != path else "."
        out.append([name, stat.st_size, stat.st_mtime_ns])
    return out


def entry_key(kind: str, path: Path, depends_on: Any) -> str:
    """Name of the cache entry of `path` for `kind` ("protein", "smiles", ...) and `depends_on` (any
    JSON-able description of the tokenizer and options): one entry per source and settings, replaced
    when the source changes."""
    text = json.dumps([CACHE_FORMAT_VERSION, kind, str(path.resolve()), depends_on], sort_keys=True)
    return f"{kind}-{path.name[:40]}-{hashlib.sha1(text.encode()).hexdigest()[:16]}"


class RaggedStore:
    """Records of variable length in one flat uint8 array with int64 offsets.

    Args:
        data: [T] uint8, every record back to back.
        offsets: [n + 1] int64, record i is `data[offsets[i]:offsets[i + 1]]`.
        extra: other per-record or per-group arrays (e.g. line numbers), by name.
        meta: the entry's description (groups, counts, ...).
        directory: the cache entry the arrays were mapped from; None for an in-memory store. A mapped
            store is sent to data-loader workers as its directory and mapped again there.
    """

    def __init__(
        self,
        data: np.ndarray,
        offsets: np.ndarray,
        extra: dict[str, np.ndarray] | None = None,
        meta: dict | None = None,
        directory: Path | None = None,
    ) -> None:
        self.data, self.offsets = data, offsets
        self.extra = extra or {}
        self.meta = meta or {}
        self.directory = directory
        self.from_cache = False  # True when an existing cache entry was reused

    @classmethod
    def open(cls, directory: Path) -> RaggedStore:
        """Map a cache entry (read-only); nothing is read into memory."""
        meta = json.loads((directory / _META).read_text())
        size = (directory / _DATA).stat().st_size
        # np.memmap cannot map an empty file; an empty corpus is refused before it gets here anyway.
        data = np.memmap(directory / _DATA, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
        offsets = np.load(directory / _OFFSETS, mmap_mode="r")
        extra = {name: np.load(directory / f"{name}.npy", mmap_mode="r") for name in meta.get("extra", [])}
        return cls(data, offsets, extra, meta, directory)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def item(self, index: int) -> np.ndarray:
        """Record `index` as a [L] uint8 array (a view into the store)."""
        return self.data[self.offsets[index] : self.offsets[index + 1]]

    def text(self, index: int) -> str:
        return self.item(index).tobytes().decode("utf-8")

    def lengths(self, indices: np.ndarray | None = None) -> np.ndarray:
        """[n] (or [len(indices)]) int64 record lengths."""
        if indices is None:
            return np.diff(self.offsets)
        indices = np.asarray(indices, dtype=np.int64)
        return np.asarray(self.offsets[indices + 1] - self.offsets[indices])

    def __getstate__(self) -> dict:
        if self.directory is None:
            return self.__dict__
        return {"directory": self.directory}

    def __setstate__(self, state: dict) -> None:
        if set(state) == {"directory"}:
            self.__dict__.update(RaggedStore.open(state["directory"]).__dict__)
        else:
            self.__dict__.update(state)


class RaggedView(Sequence):
    """Some records of a `RaggedStore`, in a given order, indexable like a list.

    `view[i]` is a [L] uint8 array (or a `str` with `text=True`); nothing is copied until then.

    Args:
        store: the records.
        indices: [m] int64 record numbers; None: every record in store order.
        text: return records as UTF-8 strings instead of byte arrays.
    """

    def __init__(self, store: RaggedStore, indices: np.ndarray | None = None, text: bool = False) -> None:
        self.store, self.text = store, text
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.store) if self.indices is None else len(self.indices)

    def record(self, i: int) -> int:
        """The store's record number of item `i`."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} records")
        i = i % n if i < 0 else i
        return int(i if self.indices is None else self.indices[i])

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        r = self.record(int(i))
        return self.store.text(r) if self.text else self.store.item(r)

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            yield self[i]

    def take(self, positions: Sequence[int] | np.ndarray) -> RaggedView:
        """The items at `positions` (of this view), in that order, as a new view."""
        positions = np.asarray(positions, dtype=np.int64)
        base = np.arange(len(self.store), dtype=np.int64) if self.indices is None else self.indices
        return RaggedView(self.store, base[positions] if len(positions) else positions, self.text)

    def store_indices(self) -> np.ndarray:
        return np.arange(len(self.store), dtype=np.int64) if self.indices is None else self.indices

    def lengths(self) -> np.ndarray:
        """[len(self)] int64 lengths of the items."""
        return self.store.lengths(self.indices)

    @staticmethod
    def concat(views: Sequence[RaggedView]) -> RaggedView:
        """One view of the items of `views` in order; all must share one store."""
        if not views:
            raise ValueError("concat needs at least one view")
        store = views[0].store
        if any(v.store is not store for v in views):
            raise ValueError("views of different stores cannot be joined")
        return RaggedView(store, np.concatenate([v.store_indices() for v in views]), views[0].text)


class StoreWriter:
    """Appends records to a store being built, in memory or in a cache entry's staging directory."""

    def __init__(self, staging: Path | None) -> None:
        self.staging = staging
        self._handle = open(staging / _DATA, "wb") if staging is not None else None  # noqa: SIM115
        self._memory = bytearray() if staging is None else None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._offsets = array.array("q", [0])  # 8 bytes a record, not a Python int's 36
        self._size = 0

    def append(self, record: bytes | np.ndarray) -> None:
        data = record.tobytes() if isinstance(record, np.ndarray) else bytes(record)
        self._size += len(data)
        self._offsets.append(self._size)
        if self._memory is not None:
            self._memory += data
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= _WRITE_BLOCK:
            self._flush()

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def _flush(self) -> None:
        self._handle.write(b"".join(self._pending))
        self._pending, self._pending_size = [], 0

    def finish(self, meta: dict, extra: dict[str, np.ndarray] | None = None) -> RaggedStore:
        offsets = np.frombuffer(self._offsets, dtype=np.int64).copy()
        self._offsets = array.array("q")
        extra = extra or {}
        meta = {**meta, "extra": sorted(extra), "records": len(offsets) - 1, "bytes": int(offsets[-1])}
        if self._memory is not None:
            data = np.frombuffer(self._memory, dtype=np.uint8)
            return RaggedStore(data, offsets, extra, meta)
        self._flush()
        self._handle.close()
        _save_array(self.staging / _OFFSETS, offsets)
        for name, values in extra.items():
            _save_array(self.staging / f"{name}.npy", values)
        (self.staging / _META).write_text(json.dumps(meta))
        return RaggedStore(np.zeros(0, np.uint8), offsets, extra, meta)

    def abort(self) -> None:
        if self._handle is not None:
            try:
                self._handle.close()
            except OSError:
                pass  # the bytes it still held could not be written either; the entry is dropped


def _save_array(path: Path, values: np.ndarray) -> None:
    # Through a stream: numpy writes a named file with tofile, which ignores a short write, so a full
    # disk would leave a truncated array in an entry that later runs trust; `write` raises instead.
    with output_stream(path) as handle:
        np.save(handle, values)


def _fresh(directory: Path, files: list[list[Any]]) -> bool:
    try:
        meta = json.loads((directory / _META).read_text())
    except (OSError, ValueError):
        return False
    return meta.get("version") == CACHE_FORMAT_VERSION and meta.get("files") == files


def cached_store(
    kind: str,
    path: Path,
    files: list[Path],
    depends_on: Any,
    build: Any,
    *,
    describe: str = "",
) -> RaggedStore:
    """The store of `path`, from its cache entry if that is fresh, else built by `build(writer)`.

    Args:
        kind: the corpus kind, part of the entry's name.
        path: the source (a file or a directory).
        files: the source files (those whose size and mtime decide freshness).
        depends_on: JSON-able settings the records depend on (tokenizer, options).
        build: `build(writer) -> (meta, extra)`: appends every record to the `StoreWriter` and returns
            the entry's extra metadata and arrays. It may raise; nothing is kept then.
        describe: what is being built, for the log line.

    Returns:
        A memory-mapped store (sources of at least `MIN_CACHED_BYTES`) or an in-memory one.
    """
    stamps = source_files(path, files)
    total = sum(size for _, size, _ in stamps)
    base = {"version": CACHE_FORMAT_VERSION, "source": str(path.resolve()), "files": stamps}
    if total < MIN_CACHED_BYTES:
        writer = StoreWriter(None)
        meta, extra = build(writer)
        return writer.finish({**base, **meta}, extra)
    root = cache_root()
    target = root / entry_key(kind, path, depends_on)
    if _fresh(target, stamps):
        log.info("%s: using the tokenized cache %s", path, target)
        store = RaggedStore.open(target)
        store.from_cache = True
        return store
    try:
        staging = staging_directory(target)
    except OSError as err:
        raise InputError(
            f"{path}: cannot write the tokenized cache in {root} ({err}); set BIOLM_CACHE_DIR"
        ) from None
    log.info("%s: tokenizing %s once into %s", path, describe or "the corpus", target)
    writer = StoreWriter(staging)
    try:
        meta, extra = build(writer)
        writer.finish({**base, **meta}, extra)
        _install(staging, target, stamps)
    except BaseException as err:
        writer.abort()
        shutil.rmtree(staging, ignore_errors=True)
        if disk_full_error(err, target) is not None:
            raise DiskFullError(
                f"{path}: cannot write its tokenized cache in {root} ({err.strerror}); free some space or "
                "set BIOLM_CACHE_DIR to another disk"
            ) from None
        raise
    return RaggedStore.open(target)


def _install(staging: Path, target: Path, stamps: list[list[Any]]) -> None:
    """Rename `staging` to `target`; a stale `target` is replaced, a fresh one (another process built it
    meanwhile, e.g. another data-parallel rank) is kept and `staging` dropped."""
    if target.exists() and _fresh(target, stamps):
        shutil.rmtree(staging, ignore_errors=True)
        return
    try:
        replace_directory(staging, target)
    except OSError:
        if not _fresh(target, stamps):
            raise
        shutil.rmtree(staging, ignore_errors=True)
