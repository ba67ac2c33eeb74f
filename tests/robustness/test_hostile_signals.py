"""Signals, a full disk and concurrent runs, through the real `biolm` command (issue 18, item 3).

Outcomes pinned here:
- SIGTERM during `biolm embed` / `biolm generate`: one line `biolm CMD: error: stopped by SIGTERM`,
  exit 143 (128 + 15, as a shell reports a process SIGTERM ended), no temporary file, an existing
  output unchanged. (`biolm train` keeps its own SIGTERM handling: `tests/tasks/test_resume_exact.py`.)
- SIGKILL while computing: nothing written. SIGKILL while writing (an audit hook kills the process as
  it opens the second file of the embedding set): the final names are untouched; what is left are
  hidden temporaries that `is_temporary` recognises (nothing removes them later). (Python ignores
  SIGXFSZ, so a file-size limit cannot be the kill.)
- A full disk (RLIMIT_FSIZE, so EFBIG, for every writer; a real ENOSPC on a small tmpfs where the tests
  run as root): one line naming the file and "File too large" / "No space left on device", exit 2, no
  temporary, an existing output (or run directory) unchanged.
- Two `biolm train` runs with the same name at once: two run directories (`NAME`, `NAME-2`), each
  written by one run only.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from biolm.io.files import is_temporary
from biolm.tasks.checkpoints import check_checkpoint
from tests.evaluation.helpers import dms_rows, write_table
from tests.robustness.cli_harness import (
    TINY_TRAIN,
    assert_clean_error,
    assert_success,
    assert_unchanged,
    command,
    earlier_output,
    run_biolm,
    snapshot,
)

SIGTERM_EXIT = 143
TIMEOUT = 120  # seconds: a bound on every run, far above what any takes


# --- helpers -------------------------------------------------------------------------------------------


def _fasta(path: Path, n: int, length: int, header_pad: int = 0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    bases = np.array(list("ACGT"))
    with open(path, "w") as handle:
        for i in range(n):
            handle.write(f">r{i} {'x' * header_pad}\n{''.join(rng.choice(bases, length))}\n")
    return path


def _file_size_limit(limit: int):
    """preexec_fn: files may grow to `limit` bytes; a write beyond fails with EFBIG, a full disk as the
    process sees it (SIGXFSZ ignored, as Python itself does at start)."""

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_files


def _env(tmp_path: Path) -> dict:
    return {"BIOLM_CACHE_DIR": str(tmp_path / "cache")}


def _old_outputs(directory: Path, name: str, suffixes=(".manifest.tsv", ".ids.txt")) -> dict:
    """An earlier run's output files in `directory`; returns their snapshot."""
    directory.mkdir(parents=True, exist_ok=True)
    earlier_output(directory / name)
    stem = Path(name).stem
    for suffix in suffixes:
        earlier_output(directory / f"{stem}{suffix}")
    return snapshot(directory)


def _temporaries(root: Path) -> list[Path]:
    return [p for p in Path(root).rglob("*") if is_temporary(p)]


class _Started:
    """`biolm ARGS...` started in the background, its output in files (a progress bar fills a pipe)."""

    def __init__(self, tmp_path: Path, name: str, *args, **kwargs) -> None:
        self.out, self.err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        env = {**os.environ, "PYTHONWARNINGS": "ignore", **kwargs.pop("env", {})}
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                command(*args), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, **kwargs
            )

    def wait_for(self, text: str, timeout: float = TIMEOUT) -> None:
        """Until `text` is on stderr (polled; bounded by `timeout`)."""
        deadline = time.monotonic() + timeout
        while text not in self.err.read_text(errors="replace"):
            if self.proc.poll() is not None:
                pytest.fail(f"ended (exit {self.proc.returncode}) before {text!r}:\n{self.err.read_text()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"no {text!r} within {timeout} s")
            time.sleep(0.1)

    def finish(self, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"still running {timeout} s after the signal")
        stdout, stderr = self.out.read_text(errors="replace"), self.err.read_text(errors="replace")
        return subprocess.CompletedProcess(self.proc.args, code, stdout, stderr)


@pytest.fixture(scope="module")
def big_fasta(tmp_path_factory) -> Path:
    """Enough DNA (a million bases) that embedding it takes far longer than a signal takes to arrive."""
    return _fasta(tmp_path_factory.mktemp("signals") / "big.fa", 4000, 250)


@pytest.fixture(scope="module")
def small_fasta(tmp_path_factory) -> Path:
    return _fasta(tmp_path_factory.mktemp("small") / "small.fa", 20, 50)


@pytest.fixture
def tmpfs(tmp_path):
    """A 256 KiB tmpfs (a disk that really fills: ENOSPC), where the tests may mount one (root)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the RLIMIT_FSIZE cases cover the same writers")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path, leave: int) -> None:
    """Fill the file system of `mount` until at most `leave` bytes are free."""
    stat = os.statvfs(mount)
    free = stat.f_bavail * stat.f_frsize
    with open(mount / "filler", "wb") as handle:
        try:
            handle.write(b"\0" * max(0, free - leave))
            handle.flush()
        except OSError:
            pass


# --- signals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".npy", ".h5"])
def test_sigterm_during_embed_is_a_clean_stop(model_dirs, big_fasta, tmp_path, ext):
    out_dir = tmp_path / "out"
    before = _old_outputs(out_dir, f"emb{ext}")
    run = _Started(
        tmp_path,
        "embed",
        "embed",
        model_dirs["dna"],
        big_fasta,
        "-o",
        out_dir / f"emb{ext}",
        env=_env(tmp_path),
    )
    run.wait_for("embedding:")
    run.proc.send_signal(signal.SIGTERM)
    proc = run.finish()
    assert_clean_error(proc, "stopped by SIGTERM", code=SIGTERM_EXIT)
    assert_unchanged(out_dir, before)


def test_sigkill_during_embed_leaves_nothing(model_dirs, big_fasta, tmp_path):
    out_dir = tmp_path / "out"
    before = _old_outputs(out_dir, "emb.npy")
    run = _Started(
        tmp_path,
        "embed",
        "embed",
        model_dirs["dna"],
        big_fasta,
        "-o",
        out_dir / "emb.npy",
        env=_env(tmp_path),
    )
    run.wait_for("embedding:")
    run.proc.send_signal(signal.SIGKILL)
    assert run.finish().returncode == -signal.SIGKILL
    assert_unchanged(out_dir, before)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_signal_during_generate(model_dirs, tmp_path, sig):
    out_dir = tmp_path / "out"
    before = _old_outputs(out_dir, "samples.fa", suffixes=())
    args = ["generate", model_dirs["dna"], "-n", 2000, "--max-new-tokens", 3000, "-o", out_dir / "samples.fa"]
    run = _Started(tmp_path, "generate", *args, env=_env(tmp_path))
    run.wait_for("generating:")
    run.proc.send_signal(sig)
    proc = run.finish()
    if sig == signal.SIGTERM:
        assert_clean_error(proc, "stopped by SIGTERM", code=SIGTERM_EXIT)
    else:
        assert proc.returncode == -signal.SIGKILL
    assert_unchanged(out_dir, before)


# `biolm ARGV...` that SIGKILLs itself when it opens, for writing, a temporary file whose name starts
# with PREFIX (`biolm` is run as the console script runs it; the audit hook sees every open()).
KILL_AT_OPEN = """
import os, runpy, signal, sys
from biolm.io.files import is_temporary
prefix = sys.argv.pop(1)
def kill_at_open(event, args):
    if event == "open" and isinstance(args[1], str) and "w" in args[1] and isinstance(args[0], str):
        name = os.path.basename(args[0])
        if is_temporary(name) and name.startswith(prefix):
            os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(kill_at_open)
sys.argv[0] = "biolm"
runpy.run_module("biolm.cli.main", run_name="__main__", alter_sys=True)
"""


def test_sigkill_while_writing_leaves_only_recognisable_temporaries(model_dirs, small_fasta, tmp_path):
    """Killed after OUT's temporary is written, as the manifest's is opened: no final name is touched,
    and what is left are hidden temporaries (`is_temporary`); nothing removes them later."""
    out_dir = tmp_path / "out"
    before = _old_outputs(out_dir, "emb.npy")
    argv = ["embed", model_dirs["dna"], small_fasta, "-o", out_dir / "emb.npy", "--no-progress"]
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AT_OPEN, ".emb.manifest.tsv", *map(str, argv)],
        capture_output=True, text=True, timeout=TIMEOUT, env={**os.environ, **_env(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    left = _temporaries(out_dir)
    names = sorted(p.name.split(".tmp-")[0] for p in left)
    assert names == [".emb.manifest.tsv", ".emb.npy"], left
    written = next(p for p in left if p.name.startswith(".emb.npy."))
    assert np.load(written).shape == (20, 32)  # complete, but under a name no reader takes
    assert {k: v for k, v in snapshot(out_dir).items() if not is_temporary(out_dir / k)} == before
    assert_success(run_biolm(*argv, env=_env(tmp_path), timeout=TIMEOUT))  # a later run is not hindered
    assert np.load(out_dir / "emb.npy").shape == (20, 32) and set(_temporaries(out_dir)) == set(left)


# --- a full disk ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".npy", ".parquet", ".h5", ".pt"])
def test_full_disk_while_writing_embeddings(model_dirs, small_fasta, tmp_path, ext):
    out_dir = tmp_path / "out"
    before = _old_outputs(out_dir, f"emb{ext}")
    proc = run_biolm(
        "embed", model_dirs["dna"], small_fasta, "-o", out_dir / f"emb{ext}", "--no-progress",
        preexec_fn=_file_size_limit(1000), env=_env(tmp_path), timeout=TIMEOUT,
    )  # fmt: skip
    assert_clean_error(proc, str(out_dir / f"emb{ext}"), "cannot write", "file too large")
    assert_unchanged(out_dir, before)


def test_full_disk_at_the_manifest_keeps_the_whole_old_set(model_dirs, tmp_path):
    """The embeddings fit, their manifest (long headers) does not: no new OUT beside an old manifest."""
    fasta = _fasta(tmp_path / "long_headers.fa", 20, 50, header_pad=300)
    out_dir = tmp_path / "out"
    before = _old_outputs(out_dir, "emb.npy")
    proc = run_biolm(
        "embed", model_dirs["dna"], fasta, "-o", out_dir / "emb.npy", "--no-progress",
        preexec_fn=_file_size_limit(4000), env=_env(tmp_path), timeout=TIMEOUT,
    )  # fmt: skip
    assert_clean_error(proc, str(out_dir / "emb.manifest.tsv"), "file too large")
    assert_unchanged(out_dir, before)


def test_no_space_left_on_a_real_disk(model_dirs, tmp_path, tmpfs):
    fasta = _fasta(tmp_path / "medium.fa", 500, 40)
    out_dir = tmpfs / "out"
    before = _old_outputs(out_dir, "emb.npy")
    _fill(tmpfs, leave=16 * 1024)  # 500 x 32 float32 is 64 KB
    proc = run_biolm(
        "embed", model_dirs["dna"], fasta, "-o", out_dir / "emb.npy", "--no-progress",
        env=_env(tmp_path), timeout=TIMEOUT,
    )  # fmt: skip
    assert_clean_error(proc, str(out_dir / "emb.npy"), "no space left on device")
    assert_unchanged(out_dir, before)


def test_full_disk_while_writing_generated_samples(model_dirs, tmp_path):
    out_dir = tmp_path / "out"
    before = _old_outputs(out_dir, "samples.fa", suffixes=())
    proc = run_biolm(
        "generate", model_dirs["dna"], "-n", 10, "--max-new-tokens", 120, "-o", out_dir / "samples.fa",
        "--no-progress", preexec_fn=_file_size_limit(1000), env=_env(tmp_path), timeout=TIMEOUT,
    )  # fmt: skip
    assert_clean_error(proc, str(out_dir / "samples.fa"), "file too large")
    assert_unchanged(out_dir, before)


def test_full_disk_while_writing_an_eval_report(model_dirs, tmp_path):
    dms = write_table(tmp_path / "dms.csv", ["mutant", "mutated_sequence", "DMS_score"], dms_rows())
    out = tmp_path / "reports" / "zs"
    out.mkdir(parents=True)
    (out / "report.md").write_text("an earlier report\n")
    (out / "metrics.json").write_text('{"title": "biolm eval zeroshot"}\n')  # unmarked, as reports were
    before = snapshot(out.parent)
    proc = run_biolm(
        "eval", "zeroshot", model_dirs["protein"], dms, "--out", out, "--no-progress",
        preexec_fn=_file_size_limit(1000), env=_env(tmp_path), timeout=TIMEOUT,
    )  # fmt: skip
    assert_clean_error(proc, str(out), "file too large")
    assert_unchanged(out.parent, before)


def _train(tmp_path: Path, run_root: Path, name: str = "t", **kwargs):
    return run_biolm(
        "train", "dna", "--no-progress", f"run_root={run_root}", f"name={name}", *TINY_TRAIN,
        env=_env(tmp_path), timeout=TIMEOUT, **kwargs,
    )  # fmt: skip


def test_full_disk_while_writing_a_checkpoint(tmp_path):
    """The first checkpoint does not fit: one line naming it; an earlier run is untouched; the new run
    directory holds only complete files (its config, Lightning's logs), no temporary, no checkpoint."""
    run_root = tmp_path / "runs"
    earlier = run_root / "t"
    earlier.mkdir(parents=True)
    (earlier / "config.yaml").write_text("an earlier run\n")
    before = snapshot(earlier)
    proc = _train(tmp_path, run_root, preexec_fn=_file_size_limit(20_000))
    line = assert_clean_error(proc, str(run_root / "t-2" / "checkpoints"), ".ckpt", "file too large")
    assert "on_exception" not in line  # the first write that failed, not the one after it
    assert_unchanged(earlier, before)
    run_dir = run_root / "t-2"
    assert not _temporaries(run_dir)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["name"] == "t"
    assert not list(run_dir.rglob("*.ckpt"))


# --- concurrent runs -----------------------------------------------------------------------------------


def test_two_runs_with_one_name_started_at_once_get_a_directory_each(tmp_path):
    run_root = tmp_path / "runs"
    args = ["train", "dna", "--no-progress", f"run_root={run_root}", "name=same", *TINY_TRAIN]
    runs = [_Started(tmp_path, f"train{i}", *args, env=_env(tmp_path)) for i in range(2)]
    procs = [run.finish() for run in runs]
    for proc in procs:
        assert_success(proc)
    dirs = sorted(Path(json.loads((d / "summary.json").read_text())["run_dir"]) for d in run_root.iterdir())
    assert [d.name for d in dirs] == ["same", "same-2"]
    announced = sorted(
        line.split(": ", 1)[1]
        for p in procs
        for line in p.stdout.splitlines()
        if line.startswith("run directory: ")
    )
    assert announced == [str(d) for d in dirs]
    for run_dir in dirs:
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["model_dir"] == str(run_dir / "model") and summary["steps"] == 2
        assert [p.name for p in (run_dir / "logs").iterdir()] == ["version_0"]  # one session wrote it
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["run_root"] == str(run_root)
        rows = (run_dir / "metrics.csv").read_text().splitlines()
        steps = [row.split(",") for row in rows]
        assert len(rows) > 1 and len({tuple(r) for r in steps}) == len(steps)
        for ckpt in (run_dir / "checkpoints").glob("*.ckpt"):
            assert check_checkpoint(ckpt) in (1, 2)
        assert not _temporaries(run_dir)
