"""The real `biolm` command in a fresh interpreter, as a user runs it, and the judgement of how it ends.

The hostile-input sweep (issue 18, item 3) expects of every case either a correct result or a clean
refusal: exit status 2, exactly one `biolm <command>: error: ...` line on stderr that names what was
wrong, no traceback, and nothing in the output directory that was not there before (no partial or
temporary file, nothing overwritten).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

# A training run that takes a few seconds on two cores.
TINY_TRAIN = [
    "trainer.max_steps=2",
    "trainer.checkpoint_every_n_steps=1",
    "trainer.log_every_n_steps=1",
    "data.seq_len=32",
    "data.batch_size=2",
    "data.windows_per_epoch=4",
    "data.max_val_windows=2",
    "model.d_model=16",
    "model.n_layers=1",
    "model.num_heads=2",
    "model.chunk_size=16",
    "optim.warmup_steps=1",
]

# An earlier run's output of each kind, by suffix: what biolm may replace (its own format, told by the
# first bytes: `biolm.io.outputs`) and must keep as it was when a new run is refused or fails.
EARLIER_OUTPUTS = {
    ".npy": b"\x93NUMPY an earlier run's output\n",
    ".parquet": b"PAR1 an earlier run's output\n",
    ".h5": b"\x89HDF\r\n\x1a\n an earlier run's output\n",
    ".pt": b"PK\x03\x04 an earlier run's output\n",
    ".fa": b">earlier\nACGT\n",
    ".manifest.tsv": b"row\tid\theader\n0\tearlier\tearlier run\n",
    ".ids.txt": b"earlier\n",
}


def earlier_output(path: Path) -> Path:
    """Write an earlier run's output of `path`'s kind (`EARLIER_OUTPUTS`) at `path`."""
    suffix = next(s for s in EARLIER_OUTPUTS if path.name.endswith(s))
    path.write_bytes(EARLIER_OUTPUTS[suffix])
    return path


def command(*args: object) -> list[str]:
    return [sys.executable, "-m", "biolm.cli.main", *map(str, args)]


def run_biolm(
    *args: object, timeout: float = 300, cwd: Path | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """`biolm ARGS...` in a fresh interpreter (stdin closed unless `input=` is given)."""
    kwargs.setdefault("stdin", None if "input" in kwargs else subprocess.DEVNULL)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **kwargs.pop("env", {})}
    return subprocess.run(
        command(*args), capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, **kwargs
    )


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("biolm ") and ": error: " in line]


def assert_clean_error(proc: subprocess.CompletedProcess, *parts: str, code: int = 2) -> str:
    """Exit `code`, no traceback, one error line containing every part (case-insensitive); returns it."""
    context = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr, context
    assert proc.returncode == code, context
    lines = error_lines(proc)
    assert len(lines) == 1, context
    for part in parts:
        assert part.lower() in lines[0].lower(), f"{part!r} not in {lines[0]!r}"
    return lines[0]


def assert_success(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"
    )


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` (relative path -> sha256 of its bytes; symlinks by their target)."""
    files = {}
    for path in sorted(Path(root).rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            files[name] = "-> " + os.readlink(path)
        elif path.is_file():
            files[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def assert_unchanged(root: Path, before: dict[str, str]) -> None:
    """Nothing under `root` was added, removed or rewritten since `snapshot(root)` returned `before`."""
    after = snapshot(root)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(name for name in set(before) & set(after) if before[name] != after[name])
    assert not (added or removed or changed), f"added {added}, removed {removed}, changed {changed}"
