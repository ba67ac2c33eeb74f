"""Reading a published checkpoint's files as data: torch pickles through the weights-only unpickler
(with an allowlist, never running pickled code) and small JSON/YAML side files, each failure one line
naming the file."""

from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from biolm.errors import InputError
from biolm.io.files import read_bounded, regular_file

# A checkpoint's side files (configs, vocabularies) are small; a larger one is not one of them.
MAX_SIDE_FILE_BYTES = 16 << 20


def read_json(path: Path, what: str) -> Any:
    """The JSON value in `path` (a regular file of at most `MAX_SIDE_FILE_BYTES`)."""
    raw = read_bounded(path, what, MAX_SIDE_FILE_BYTES)
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: the {what} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: the {what} is not valid JSON ({err.msg}, line {err.lineno})") from None
    except RecursionError:
        raise InputError(f"{path}: the {what} is JSON nested too deeply") from None


def load_torch(path: Path, what: str, allowed: Iterable[Any] = ()) -> Any:
    """What `torch.save` wrote to `path`, read by torch's weights-only unpickler: tensors, containers and
    plain values, plus the classes in `allowed` (e.g. OmegaConf's containers, read as data). A pickle
    that asks for anything else is refused, never imported or run.

    Raises:
        InputError: a missing or non-regular file, a file that is not a torch checkpoint or is cut short,
            or a pickle asking for a global outside the allowlist (named).
    """
    import torch

    path = regular_file(path, what)
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if found:
            raise InputError(
                f"{path}: the {what} asks for {found.group(1)}, which biolm does not allow in a checkpoint "
                "(it reads weights as data and never runs code from a pickle)"
            ) from None
        raise InputError(f"{path}: not a readable {what} ({_last_line(err)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as err:
        raise InputError(f"{path}: not a readable {what}; is it cut short? ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def _last_line(err: BaseException) -> str:
    text = [line for line in str(err).strip().splitlines() if line.strip()]
    return text[-1][:200] if text else type(err).__name__


def find(source: Path, *names: str) -> Path | None:
    """The first of `names` that exists in the directory `source` (None if none)."""
    for name in names:
        candidate = source / name
        if os.path.lexists(candidate):
            return candidate
    return None
