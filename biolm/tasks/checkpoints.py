"""Checkpoints that survive a kill: atomic writes, never a non-finite one, and a checked choice of the
checkpoint to resume from.

Lightning's own `_atomic_save` serialises to memory and writes through an fsspec transaction, whose
temporary file lies in the system temp directory: when that is another file system than the run
directory, the final move is a copy that a kill can cut short, leaving a truncated `last.ckpt` and no
good one. `AtomicCheckpointIO` writes a temporary file next to the target, syncs it to disk and renames
it over the target, so a checkpoint is either the previous complete file or the new complete one.

Every checkpoint is read with torch's weights-only unpickler (`safe_load`), by `check_checkpoint` and by
Lightning's own restore (through `SafeCheckpointIO.load_checkpoint`) alike: a pickle that asks for
anything but tensors and plain containers and scalars (a function to call, a class to build) is
refused in one line naming the file and what it asked for, and is never unpickled in full, as a
crafted one would run code. biolm's and Lightning's checkpoints hold nothing else (RNG states are
lists and tensors, hyper-parameters plain dicts); `SAFE_GLOBALS` is the place for a type that must be
allowed, for these loads only.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import OnExceptionCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from biolm.errors import ConfigError, DiskFullError, InputError
from biolm.io.files import TEMP_MARK, atomic_file, output_stream, regular_file

log = logging.getLogger(__name__)


# Types and functions a checkpoint may ask for beyond torch's weights-only defaults (tensors, storages,
# OrderedDict, built-in containers and scalars), allowed for biolm's checkpoint loads only (never
# process-wide). A tiny run of every domain and objective needs none (tests/tasks/
# test_checkpoint_safety.py checks it); state of our own is stored plain rather than added here.
SAFE_GLOBALS: tuple = ()


class NotACheckpointFileError(InputError):
    """A checkpoint path that is not a regular file: a FIFO would hang the reader, a device (/dev/zero)
    fill the memory, a link lead nowhere. Killed writes never leave one, so `resume_checkpoint` refuses
    the run directory rather than skip it for an older checkpoint."""


def checkpoint_file(path) -> Path:
    """`path` checked to be a regular file (links followed); no size bound, as checkpoints are
    legitimately large and are read by random access (zip members, memory-mapped tensors).

    Raises:
        NotACheckpointFileError: missing, a link to nothing, a directory, FIFO, device or socket.
    """
    try:
        return regular_file(path, "checkpoint")
    except InputError as err:
        raise NotACheckpointFileError(str(err)) from None


class UnsafeCheckpointError(InputError):
    """A checkpoint whose pickle asks for a type or function outside the weights-only allow-list.

    Such a file may run code when unpickled in full, so it is never loaded; `resume_checkpoint` does
    not fall back to an older checkpoint of a run directory holding one either.
    """


# What torch's weights-only unpickler names in its refusals (torch/_weights_only_unpickler.py).
_REFUSALS = (
    re.compile(r"GLOBAL (\S+) was not an allowed global"),
    re.compile(r"unsupported GLOBAL (\S+) whose module"),
    re.compile(r"reduce for unrecognized function (.+?)(?: which belongs to .*)?$", re.MULTILINE),
    re.compile(r"(?:new object|build).* but got (<class '[^']+'>)"),
)


def refused_global(err: BaseException) -> str:
    """What the weights-only unpickler refused, from its error: a global's dotted name where it says."""
    text = str(err)
    for pattern in _REFUSALS:
        found = pattern.search(text)
        if found:
            return found.group(1)
    # Anything else (a malformed pickle stream): the unpickler's own first line.
    lines = [line.strip() for line in text.split("WeightsUnpickler error:")[-1].splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def safe_load(path, map_location: Any = "cpu", mmap: bool = False) -> Any:
    """`torch.load(path, weights_only=True)`, allowing `SAFE_GLOBALS` too, and never anything more.

    Raises:
        UnsafeCheckpointError: the pickle asks for another type or function; one line naming the file
            and what it asked for.
    """
    with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
        try:
            return torch.load(path, map_location=map_location, mmap=mmap, weights_only=True)
        except pickle.UnpicklingError as err:
            raise _unsafe(path, err) from err


def _unsafe(path, err: BaseException) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"{path}: refused checkpoint: its pickle asks for {refused_global(err)}, not a tensor or a plain "
        "type (a file that could run code is never loaded in full)"
    )


def nonfinite_tensors(state: dict[str, Any]) -> list[str]:
    """Names of floating-point tensors in `state` (a state dict) holding NaN or inf."""
    return [
        name
        for name, value in state.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()
    ]


class SafeCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` whose loads (Lightning's restore on `trainer.fit(ckpt_path=...)`, `"best"`
    weights before a predict) use the weights-only unpickler only, whatever `weights_only` the caller
    asks for. Loading failures become one-line `InputError`s naming the file (`UnsafeCheckpointError`
    for a pickle asking for more than tensors and plain types)."""

    def load_checkpoint(
        self, path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict:
        location = map_location or (lambda storage, loc: storage)
        if "://" not in str(path):  # remote storage has no FIFOs or devices
            checkpoint_file(path)
        try:
            with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
                return super().load_checkpoint(path, map_location=location, weights_only=True)
        except pickle.UnpicklingError as err:
            raise _unsafe(path, err) from err
        except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
            if isinstance(err, FileNotFoundError):
                raise InputError(f"{path}: checkpoint not found") from err
            raise InputError(f"{path}: unreadable checkpoint ({_first_line(err)})") from err


class AtomicCheckpointIO(SafeCheckpointIO):
    """`SafeCheckpointIO` that writes atomically on local paths and refuses non-finite weights.

    A checkpoint whose weights hold NaN or inf is not written (an error is logged), so the previous
    good checkpoint stays the newest one.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        bad = nonfinite_tensors(checkpoint.get("state_dict", {}))
        if bad:
            log.error(
                "not writing checkpoint %s: %d weight tensor(s) hold NaN or inf (first: %s); "
                "the previous checkpoint is kept",
                path,
                len(bad),
                bad[0],
            )
            return
        if "://" in str(path):  # remote storage: Lightning's transaction is what there is
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_file(path, durable=True) as temp, output_stream(temp) as handle:
            torch.save(checkpoint, handle)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


class SafeOnExceptionCheckpoint(OnExceptionCheckpoint):
    """`OnExceptionCheckpoint` that writes nothing before the first step, and resumes on the right step.

    A checkpoint before the first step would hold freshly initialised weights: after a failed restore
    of a resumed run, it would be newer than the run's real checkpoints and the next `--resume` would
    start over.

    Lightning restores its logging-step counter (`_batches_that_stepped`) as if every checkpoint had
    been written at the end of a step, before the counter moved, and adds one. Written during a step
    that failed, the counter had not moved for that step, so the one is taken off here: a resumed run
    then logs the redone step at its own step, as an uninterrupted run does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._saving = False

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # A full disk would fail this write too, and its error would hide the first one's file.
        if trainer.global_step == 0 or isinstance(exception, DiskFullError):
            return
        self._saving = True
        try:
            trainer.save_checkpoint(self.ckpt_path, weights_only=False)
        finally:
            self._saving = False

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if not self._saving:
            return
        loop = trainer.fit_loop.epoch_loop
        progress = loop.batch_progress.current
        within_step = progress.processed < progress.started
        # Lightning adds its one only when the failed batch would have ended an accumulation window.
        if within_step and not loop._should_accumulate():
            state = checkpoint["loops"]["fit_loop"]["epoch_loop.state_dict"]
            state["_batches_that_stepped"] = max(0, state["_batches_that_stepped"] - 1)


def check_checkpoint(path: Path, model_config: dict | None = None) -> int:
    """Check that `path` is a complete, uncorrupted training checkpoint; return its global step.

    Reads the whole file once (every member's CRC) but unpickles only the metadata (tensors are
    memory-mapped, not read), with the weights-only unpickler (`safe_load`).

    Args:
        model_config: the run's model config; a checkpoint of another model shape is a `ConfigError`.

    Raises:
        InputError: a truncated, corrupt or foreign file, in one line naming it.
        NotACheckpointFileError: not a regular file (a FIFO, a device, a link to nothing).
        UnsafeCheckpointError: an intact archive whose pickle asks for more than tensors and plain types.
    """
    checkpoint_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, EOFError) as err:
        raise InputError(f"{path}: truncated or corrupt checkpoint (not a complete archive)") from err
    except OSError as err:
        raise InputError(f"{path}: cannot read checkpoint ({_first_line(err)})") from err
    if broken is not None:
        raise InputError(f"{path}: corrupt checkpoint (checksum mismatch in {broken})")
    try:
        checkpoint = safe_load(path, map_location="cpu", mmap=True)
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # any other unpickling failure: the file is not a checkpoint of ours
        raise InputError(f"{path}: unreadable checkpoint ({_first_line(err)})") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "global_step" not in checkpoint:
        raise InputError(f"{path}: not a biolm training checkpoint (no state_dict / global_step)")
    if model_config is not None:
        saved = (checkpoint.get("hyper_parameters") or {}).get("model_config") or {}
        for key, value in model_config.items():
            if key in saved and saved[key] != value:
                raise ConfigError(
                    f"{path} was trained with model.{key}={saved[key]!r}, the config says {value!r}; "
                    "a resumed run keeps its model"
                )
    return int(checkpoint["global_step"])


def resume_checkpoint(run_dir: Path, model_config: dict | None = None, clean: bool = True) -> Path:
    """The newest good checkpoint of a run: `last*.ckpt` or `on_exception.ckpt`, else `best-*.ckpt`.

    Newer checkpoints that are truncated or corrupt are skipped with a warning naming them; stale
    temporary files of a killed write are removed (if `clean`: by one process of a distributed run).
    A checkpoint whose pickle could run code, or one that is not a regular file (a FIFO, /dev/zero, a
    link to nothing: no killed write leaves one), is not skipped: the run directory is not resumed from.

    Raises:
        InputError: no checkpoint, or none that is good (one line naming the newest bad one).
        NotACheckpointFileError: a checkpoint tried is not a regular file.
        UnsafeCheckpointError: a checkpoint asks for more than tensors and plain types.
    """
    directory = run_dir / "checkpoints"
    for stale in directory.glob(f".*.ckpt{TEMP_MARK}*") if clean else ():
        stale.unlink(missing_ok=True)
    newest_first = sorted(directory.glob("*.ckpt"), key=_modified, reverse=True)
    # Written at the end of a training step (or on an exception): Lightning resumes these exactly.
    exact = [p for p in newest_first if p.name.startswith(("last", "on_exception"))]
    # Written after a validation: a fallback only, as Lightning restarts them one step off.
    fallback = [p for p in newest_first if p not in exact]
    if not newest_first:
        raise InputError(f"{run_dir}: no checkpoint to resume from (checkpoints/*.ckpt is missing)")
    errors: list[InputError] = []
    for path in exact + fallback:
        try:
            check_checkpoint(path, model_config)
        except (UnsafeCheckpointError, NotACheckpointFileError):
            raise
        except InputError as err:
            errors.append(err)
            continue
        for err in errors:
            log.warning("skipping %s", err)
        if path in fallback:
            log.warning(
                "resuming from %s, written after a validation: the run goes on, but its steps may be "
                "logged one off and its data order differ from an uninterrupted run",
                path.name,
            )
        return path
    more = f" (and {len(errors) - 1} older checkpoint(s) as bad)" if len(errors) > 1 else ""
    raise InputError(f"no good checkpoint to resume from: {errors[0]}{more}")


def _modified(path: Path) -> float:
    """When `path` (or, for a link to nothing, the link itself) was last modified."""
    try:
        return path.stat().st_mtime
    except OSError:
        return path.lstat().st_mtime
