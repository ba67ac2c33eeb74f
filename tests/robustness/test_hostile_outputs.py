"""Hostile and careless output paths through the real CLI (issue 27, items 1, 2, 6): an output never
destroys what biolm did not write.

Each refusal is checked before any work: exit 2, one `biolm CMD: error:` line naming the path and why,
no traceback, and every file around it byte for byte as before (the inputs included). Where the
output is a device, a FIFO or standard output, the samples are written into it and the node stays.

What is pinned (`biolm.io.outputs`):
- an output may replace an earlier output of its own kind only: a FASTA / SMILES file, an embedding
  set (OUT, OUT.manifest.tsv, OUT.ids.txt, each told by its first bytes), a report directory with
  biolm's marker (or an unmarked one of report files only); never an input of the same command (by
  path, link or inode; side files and the files of a model directory included), never a directory
  that holds anything else, nor the current directory or one above it;
- a missing parent directory is created; a read-only one, a file on the way, or a name longer than
  the file system allows is refused;
- the manifest is TSV as csv writes it (headers kept whole, quoted where needed); ids are at most
  128 characters and unique regardless of case.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from biolm.io.records import MAX_ID_CHARS
from biolm.io.tables import read_table
from tests.evaluation.helpers import motif_rows, write_table
from tests.robustness.cli_harness import (
    TINY_TRAIN,
    assert_clean_error,
    assert_success,
    assert_unchanged,
    run_biolm,
    snapshot,
)

TIMEOUT = 120
DNA = ">a\nACGTACGTAC\n>b\nGGCCTTAA\n"
FAMILY = (
    ">p1\nMKTAYIAKQR\n>p2\nMKTAYLAKQR\n>p3\nMKVAYIAKQR\n>p4\nMKTAHIAKQR\n>p5\nMKTAYIAKER\n>p6\nMRTAYIAKQR\n"
)
GENERATE = ("-n", "2", "--length", "6", "--no-progress")


def _refused(proc, root: Path, before: dict, *parts: str) -> None:
    assert_clean_error(proc, *parts)
    assert_unchanged(root, before)


def _embed(model, source, out, **kwargs):
    return run_biolm("embed", model, source, "-o", out, "--no-progress", timeout=TIMEOUT, **kwargs)


def _generate(model, out, *extra, **kwargs):
    return run_biolm("generate", model, "-o", out, *GENERATE, *extra, timeout=TIMEOUT, **kwargs)


def _probe(model, data, out, **kwargs):
    return run_biolm("eval", "probe", model, data, "--out", out, "--no-progress", timeout=TIMEOUT, **kwargs)


@pytest.fixture
def work(tmp_path, model_dirs) -> Path:
    """A working directory with a copy of each tiny model (so that a test may see its files destroyed)."""
    for kind, source in model_dirs.items():
        shutil.copytree(source, tmp_path / kind)
    (tmp_path / "in.fa").write_text(DNA)
    return tmp_path


@pytest.fixture
def labelled(work) -> Path:
    """`data/labelled.csv` (a protein probe's input) beside an unrelated `data/precious_notes.txt`."""
    (work / "data").mkdir()
    (work / "data" / "precious_notes.txt").write_text("not biolm's\n")
    return write_table(work / "data" / "labelled.csv", ["sequence", "label"], motif_rows(40))


# --- item 1: an output never replaces an input or what biolm did not write --------------------------------


@pytest.mark.parametrize("out", ["data", "protein", "data/labelled.csv"])
def test_eval_out_is_never_an_input_or_a_directory_holding_one(work, labelled, out):
    """`--out data` deleted data/ whole (the input CSV and unrelated notes); `--out MODEL_DIR` deleted
    the model; `--out labelled.csv` hid the input as `.labelled.csv.old-NNNN`."""
    before = snapshot(work)
    proc = _probe(work / "protein", labelled, work / out, cwd=work)
    _refused(proc, work, before, out, "input of this command")


def test_eval_out_is_never_a_directory_holding_other_files(work, labelled):
    (work / "reports").mkdir()
    (work / "reports" / "notes.md").write_text("mine\n")
    before = snapshot(work)
    _refused(_probe(work / "protein", labelled, work / "reports"), work, before, "notes.md", "did not write")


def test_an_earlier_report_is_replaced_and_a_marked_one_with_a_new_file_is_not(work, labelled):
    out = work / "report"
    assert_success(_probe(work / "protein", labelled, out))
    assert_success(_probe(work / "protein", labelled, out))  # an earlier report: replaced as a whole
    assert (out / ".biolm-output.json").is_file() and (out / "report.md").is_file()
    (out / "my_analysis.ipynb").write_text("{}\n")
    before = snapshot(work)
    _refused(_probe(work / "protein", labelled, out), work, before, "my_analysis.ipynb")


@pytest.mark.parametrize("side", ["ids", "manifest"])
def test_embed_side_files_never_replace_the_input(work, side):
    """`embed MODEL mols.ids.txt -o mols.npy` replaced the SMILES input with the id list;
    `embed MODEL old.manifest.tsv -o old.npy` replaced the input table with the manifest."""
    if side == "ids":
        source, model, out = work / "mols.ids.txt", work / "smiles", work / "mols.npy"
        source.write_text("CCO\nCCN\nc1ccccc1\n")
    else:
        source, model, out = work / "old.manifest.tsv", work / "dna", work / "old.npy"
        source.write_text("id\tsequence\na\tACGT\nb\tGGCC\n")
    before = snapshot(work)
    _refused(_embed(model, source, out), work, before, source.name, "input of this command")


def test_generate_never_overwrites_its_context(work):
    """`--context family.fasta -o family.fasta` turned a 6-member family into 2 samples."""
    family = work / "family.fasta"
    family.write_text(FAMILY)
    before = snapshot(work)
    proc = _generate(work / "protein", family, "--context", family)
    _refused(proc, work, before, "family.fasta", "input of this command")


@pytest.mark.parametrize("name", ["config.yaml", "model.safetensors", "tokenizer.json"])
def test_generate_never_overwrites_the_models_files(work, name):
    """`-o MODEL_DIR/config.yaml` wrote FASTA over the model's config."""
    before = snapshot(work)
    _refused(_generate(work / "dna", work / "dna" / name), work, before, name, "input of this command")


def test_a_link_to_an_input_is_the_input(work):
    family = work / "family.fasta"
    family.write_text(FAMILY)
    (work / "alias.fasta").symlink_to(family)
    os.link(family, work / "hard.fasta")
    before = snapshot(work)
    for out in ("alias.fasta", "hard.fasta"):
        proc = _generate(work / "protein", work / out, "--context", family)
        _refused(proc, work, before, out, "input of this command")


def test_generate_never_replaces_a_file_of_another_format(work):
    (work / "notes.txt").write_text("my precious notes\n")
    (work / "mols.smi").write_text("CCO\n")
    before = snapshot(work)
    _refused(_generate(work / "dna", work / "notes.txt"), work, before, "notes.txt", "not a FASTA file")
    _refused(_generate(work / "dna", work / "mols.smi"), work, before, "mols.smi", "not a FASTA file")


def test_generate_replaces_its_own_earlier_output(work):
    out = work / "samples.fa"
    out.write_text(">earlier\nACGT\n")
    assert_success(_generate(work / "dna", out))
    assert out.read_text().startswith(">sample_1\n")


@pytest.mark.slow  # trains a tiny run first (~10 s)
def test_resume_refuses_a_model_directory_that_now_holds_other_files(work):
    """The export at the end of a resumed run replaces model/: checked before the run, not after it."""
    env = {"BIOLM_CACHE_DIR": str(work / "cache")}
    run = work / "runs" / "t"
    train = ("train", "dna", "--no-progress", f"run_root={work / 'runs'}", "name=t", *TINY_TRAIN)
    assert_success(run_biolm(*train, env=env, timeout=TIMEOUT))
    (run / "model" / "README.md").write_text("my notes on this model\n")
    before = snapshot(work)
    proc = run_biolm(
        "train", "dna", "--no-progress", "--resume", run, "trainer.max_steps=4", env=env, timeout=TIMEOUT
    )
    _refused(proc, work, before, "README.md", "did not write")


# --- item 1: devices, FIFOs and standard output are written into, never replaced ---------------------------


def test_dev_full_is_a_full_disk_and_stays_a_device(work):
    """`-o /dev/full` printed "wrote 2 sequences", exit 0, and replaced the device node with a file."""
    before = snapshot(work)
    proc = _generate(work / "dna", "/dev/full")
    _refused(proc, work, before, "/dev/full", "no space left on device")
    assert Path("/dev/full").is_char_device()


def test_a_fifo_is_written_not_replaced(work):
    """`-o fifo.fasta` replaced the named pipe with a file, so its reader got nothing."""
    fifo = work / "fifo.fasta"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    proc = _generate(work / "dna", fifo)
    reader.join(timeout=TIMEOUT)
    assert_success(proc)
    assert fifo.is_fifo() and got and got[0].count(">sample_") == 2


@pytest.mark.parametrize("name", ["-", "/dev/stdout", "/proc/self/fd/1"])
def test_standard_output_gets_the_samples(work, name):
    """`-o /proc/self/fd/1` was a FileNotFoundError traceback: output to stdout was impossible."""
    proc = _generate(work / "dna", name)
    assert_success(proc)
    assert proc.stdout.count(">sample_") == 2 and proc.stdout.startswith(">sample_1\n")
    assert "wrote 2 sequences" in proc.stderr  # the summary stays off the samples' stream


def test_embed_refuses_a_fifo_or_stdout_for_its_set_of_files(work):
    os.mkfifo(work / "emb.npy")
    before = snapshot(work)
    proc = _embed(work / "dna", work / "in.fa", work / "emb.npy")
    _refused(proc, work, before, "emb.npy", "FIFO", "written as a regular file")
    _refused(_embed(work / "dna", work / "in.fa", "-"), work, before, "unknown output extension")


# --- item 2: unwritable outputs are one line, before the work ---------------------------------------------


def test_embed_into_a_directory_named_like_the_output(work):
    """`embed -o existing.npy` (a directory) was an IsADirectoryError traceback, and the new manifest
    and ids were left beside it."""
    (work / "existing.npy").mkdir()
    before = snapshot(work)
    _refused(_embed(work / "dna", work / "in.fa", work / "existing.npy"), work, before, "is a directory")


def test_an_earlier_set_whose_manifest_is_a_directory_is_left_whole(work):
    """The ids file was replaced while set.npy kept the old rows: the set no longer matched."""
    (work / "set.npy").write_bytes(b"\x93NUMPY earlier")
    (work / "set.ids.txt").write_text("earlier\n")
    (work / "set.manifest.tsv").mkdir()
    before = snapshot(work)
    _refused(_embed(work / "dna", work / "in.fa", work / "set.npy"), work, before, "set.manifest.tsv")


def test_generate_into_an_existing_directory(work):
    (work / "samples").mkdir()
    before = snapshot(work)
    _refused(_generate(work / "dna", work / "samples"), work, before, "samples", "is a directory")


@pytest.mark.parametrize("out", [".", ".."])
def test_eval_out_is_never_the_current_directory_or_above(work, labelled, out):
    """`eval --out .` / `--out ..` were tracebacks."""
    inner = work / "inner"
    inner.mkdir()
    before = snapshot(work)
    _refused(_probe(work / "protein", labelled, out, cwd=inner), work, before, "current directory")


@pytest.fixture
def read_only(tmp_path) -> Path:
    """A directory nothing can be written in: a read-only tmpfs as root (root ignores permissions),
    else a directory without write permission."""
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(locked)], check=False
        )
        if done.returncode != 0:
            pytest.skip("cannot mount a read-only tmpfs here")
        yield locked
        subprocess.run(["umount", "-l", str(locked)], check=False)
    else:
        locked.chmod(0o555)
        yield locked
        locked.chmod(0o755)


@pytest.mark.parametrize("command", ["embed", "generate", "eval"])
def test_a_read_only_directory(work, labelled, read_only, command):
    """PermissionError / OSError tracebacks before."""
    before = snapshot(work)
    if command == "embed":
        proc = _embed(work / "dna", work / "in.fa", read_only / "sub" / "emb.npy")
    elif command == "generate":
        proc = _generate(work / "dna", read_only / "samples.fa")
    else:
        proc = _probe(work / "protein", labelled, read_only / "report")
    _refused(proc, work, before, str(read_only), "cannot write in")


@pytest.mark.parametrize("where", ["a file", "read-only"])
def test_train_into_a_run_root_that_cannot_hold_a_run(work, read_only, where):
    """A traceback after the data were read (FileExistsError / PermissionError) before."""
    (work / "runs.txt").write_text("mine\n")
    root = work / "runs.txt" if where == "a file" else read_only / "runs"
    before = snapshot(work)
    proc = run_biolm(
        "train", "dna", "--no-progress", f"run_root={root}", "name=t", *TINY_TRAIN,
        env={"BIOLM_CACHE_DIR": str(work / "cache")}, timeout=TIMEOUT,
    )  # fmt: skip
    _refused(proc, work, before, str(root))


def test_a_file_on_the_way_and_a_name_too_long(work, labelled):
    (work / "plain.txt").write_text("mine\n")
    before = snapshot(work)
    _refused(
        _generate(work / "dna", work / "plain.txt" / "out.fa"), work, before, "plain.txt", "not a directory"
    )
    long = "x" * 300
    _refused(_embed(work / "dna", work / "in.fa", work / f"{long}.npy"), work, before, "more than the 255")
    _refused(_probe(work / "protein", labelled, work / long), work, before, "more than the 255")


def test_a_missing_parent_is_created(work):
    assert_success(_embed(work / "dna", work / "in.fa", work / "new" / "deeper" / "emb.npy"))
    assert np.load(work / "new" / "deeper" / "emb.npy").shape[0] == 2


# --- item 6: the manifest is valid TSV for any header; ids are capped and unique regardless of case -----


def test_the_manifest_reads_back_one_row_per_record(work):
    """A header starting with `"` was written unquoted: csv and pyarrow read 3 records as 2 rows. A
    300,000-character header was kept as the id."""
    headers = ['"quoted" start', "tab\tinside", "x" * 300_000, "Case", "CASE", 'end quote"']
    source = work / "odd.fa"
    source.write_text("".join(f">{h}\nACGT\n" for h in headers))
    out = work / "odd.npy"
    assert_success(_embed(work / "dna", source, out))
    manifest = work / "odd.manifest.tsv"
    csv.field_size_limit(1 << 20)  # the 300,000-character header: Python's csv stops at 131,072
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["header"] for r in rows] == headers  # kept whole (a FASTA header line's tab included)
    ids = [r["id"] for r in rows]
    assert max(map(len, ids)) <= MAX_ID_CHARS and len({i.lower() for i in ids}) == len(headers)
    assert ids == (work / "odd.ids.txt").read_text().split()
    header, table = read_table(manifest)  # the project's own reader
    assert header == ["row", "id", "header"] and [row[2] for _, row in table] == headers
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_csv(manifest, sep="\t", dtype=str, keep_default_na=False)
    assert list(frame["header"]) == headers and list(frame["id"]) == ids
    assert len(np.load(out)) == len(headers)
