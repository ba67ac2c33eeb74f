"""The output-placement rule (`biolm.io.outputs`): what an output may replace, what it must not, and
where it is written into instead. The same cases through the real CLI are in
tests/robustness/test_hostile_outputs.py."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest

from biolm.errors import DiskFullError, OutputError
from biolm.io.outputs import (
    FASTA,
    ID_LIST,
    MANIFEST,
    MARKER,
    NPY,
    SMILES,
    DirectoryKind,
    Inputs,
    check_directory_output,
    check_file_output,
    output_directory,
    output_text,
)

REPORT = DirectoryKind("report directory", "report")


def _write(path: Path, text: str = "x\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("kind", "text", "ours"),
    [
        (FASTA, ">a\nACGT\n", True),
        (FASTA, "", True),
        (FASTA, "my notes\n", False),
        (SMILES, "CCO\nc1ccccc1\tbenzene\n", True),
        (SMILES, ">a\nACGT\n", False),
        (SMILES, "hello world, these are notes\n", False),
        (MANIFEST, "row\tid\theader\n0\ta\ta\n", True),
        (MANIFEST, "CCO\n", False),
        (ID_LIST, "a\nb_2\n", True),
        (ID_LIST, "C(=O)O\n", False),
        (NPY, "not numpy", False),
    ],
)
def test_an_existing_file_is_replaced_only_when_it_is_of_the_outputs_format(tmp_path, kind, text, ours):
    path = _write(tmp_path / "out", text)
    if ours:
        assert check_file_output(path, kind) == path
    else:
        with pytest.raises(OutputError, match="is not a"):
            check_file_output(path, kind)


def test_an_input_is_never_an_output_by_path_link_or_inode(tmp_path):
    source = _write(tmp_path / "family.fasta", ">a\nMKT\n")
    link = tmp_path / "link.fasta"
    link.symlink_to(source)
    hard = tmp_path / "hard.fasta"
    os.link(source, hard)
    inputs = Inputs.of(source)
    for path in (source, link, hard):
        with pytest.raises(OutputError, match="is an input of this command"):
            check_file_output(path, FASTA, inputs)
    assert check_file_output(tmp_path / "new.fasta", FASTA, inputs)


def test_a_model_directory_input_covers_its_files(tmp_path):
    model = tmp_path / "model"
    _write(model / "config.yaml", "format: biolm-model\n")
    with pytest.raises(OutputError, match="input"):
        check_file_output(model / "config.yaml", FASTA, Inputs.of(model))
    with pytest.raises(OutputError, match="is an input"):
        check_directory_output(model, REPORT, Inputs.of(model))
    with pytest.raises(OutputError, match="holds .*config.yaml"):
        check_directory_output(tmp_path, REPORT, Inputs.of(model / "config.yaml"))


def test_a_directory_is_replaced_only_when_empty_or_ours(tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    assert check_directory_output(out, REPORT)  # empty
    with output_directory(out, REPORT) as staging:
        (staging / "report.md").write_text("new\n")
    assert json.loads((out / MARKER).read_text())["files"] == ["report.md"]
    with output_directory(out, REPORT) as staging:  # an earlier report is replaced as a whole
        (staging / "metrics.json").write_text("{}\n")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "metrics.json"]
    _write(out / "notes.txt")
    with pytest.raises(OutputError, match=r"holds files biolm did not write .*notes\.txt"):
        check_directory_output(out, REPORT)
    other = DirectoryKind("model directory", "model")
    (out / "notes.txt").unlink()
    with pytest.raises(OutputError, match="did not write as a model directory"):
        check_directory_output(out, other)  # a marker of another kind


def test_a_kind_recognises_its_directories_from_before_the_marker(tmp_path):
    out = tmp_path / "old"
    _write(out / "a.txt")
    kind = DirectoryKind("thing", "thing", lambda d: {"a.txt"} if (d / "a.txt").exists() else None)
    assert check_directory_output(out, kind)
    _write(out / "b.txt")
    with pytest.raises(OutputError, match="b.txt"):
        check_directory_output(out, kind)


def test_the_current_directory_and_those_above_it_are_refused(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for path in (Path("."), Path(".."), work, Path("/")):
        with pytest.raises(OutputError, match="current directory"):
            check_directory_output(path, REPORT)


def test_wrong_kinds_of_place(tmp_path):
    file = _write(tmp_path / "file.txt")
    with pytest.raises(OutputError, match="is a file, not a directory"):
        check_directory_output(file, REPORT)
    with pytest.raises(OutputError, match="is a directory"):
        check_file_output(tmp_path, FASTA)
    with pytest.raises(OutputError, match="file.txt is not a directory"):
        check_file_output(file / "out.fa", FASTA)
    with pytest.raises(OutputError, match="more than the"):
        check_file_output(tmp_path / ("x" * 300 + ".fa"), FASTA)
    dangling = tmp_path / "dangling.fa"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError, match="link to a missing file"):
        check_file_output(dangling, FASTA)
    # A missing parent is created when the output is written.
    with output_text(tmp_path / "new" / "deeper" / "out.fa", FASTA) as handle:
        handle.write(">a\nA\n")
    assert (tmp_path / "new" / "deeper" / "out.fa").read_text() == ">a\nA\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="cannot write in .*locked"):
            check_file_output(locked / "out.fa", FASTA)
    finally:
        locked.chmod(0o755)


def test_devices_and_fifos_are_written_into_not_replaced(tmp_path):
    with pytest.raises(DiskFullError, match="/dev/full: cannot write: No space left"):
        with output_text("/dev/full", FASTA) as handle:
            handle.write(">a\nACGT\n" * 10_000)
    assert Path("/dev/full").is_char_device()
    with pytest.raises(OutputError, match="character device; a .npy file is written as a regular file"):
        check_file_output("/dev/null", NPY)
    fifo = tmp_path / "samples.fa"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    with output_text(fifo, FASTA) as handle:
        handle.write(">a\nACGT\n")
    reader.join(timeout=10)
    assert got == [">a\nACGT\n"] and fifo.is_fifo()


def test_standard_output_is_written_into(capfd):
    with output_text("-", FASTA) as handle:
        handle.write(">a\nACGT\n")
    assert capfd.readouterr().out == ">a\nACGT\n"
    with pytest.raises(OutputError, match="cannot be written to a file descriptor"):
        check_file_output("-", NPY)


def test_a_descriptor_path_is_written_into_not_replaced_through_its_link(tmp_path):
    log = tmp_path / "log.txt"
    with open(log, "w") as handle:  # as a shell's `2> log.txt` leaves it
        inode = os.fstat(handle.fileno()).st_ino
        with output_text(f"/proc/self/fd/{handle.fileno()}", FASTA) as out:
            out.write(">a\nACGT\n")
    # Written into the open file, not a new file renamed over the name the link resolves to.
    assert log.stat().st_ino == inode and log.read_text() == ">a\nACGT\n"
    assert [p.name for p in tmp_path.iterdir()] == ["log.txt"]
    with pytest.raises(OutputError, match="file descriptor"):
        check_file_output("/dev/fd/2", NPY)


def test_a_failed_write_into_a_pipe_is_one_line(tmp_path, monkeypatch):
    fifo = tmp_path / "closed.fa"
    os.mkfifo(fifo)

    def broken(*args, **kwargs):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    reader = threading.Thread(target=lambda: open(fifo).close(), daemon=True)
    reader.start()
    with pytest.raises(OutputError, match="closed the pipe"):
        with output_text(fifo, FASTA) as handle:
            monkeypatch.setattr(handle, "write", broken)
            handle.write(">a\n")
    reader.join(timeout=10)


def test_an_output_is_written_through_a_link_not_over_it(tmp_path):
    real = _write(tmp_path / "data" / "samples.fa", ">earlier\nA\n")
    link = tmp_path / "samples.fa"
    link.symlink_to(real)
    with output_text(link, FASTA) as handle:
        handle.write(">new\nC\n")
    assert link.is_symlink() and real.read_text() == ">new\nC\n"
    report = tmp_path / "report"
    (tmp_path / "reports" / "r1").mkdir(parents=True)
    report.symlink_to(tmp_path / "reports" / "r1")
    with output_directory(report, REPORT) as staging:
        (staging / "report.md").write_text("new\n")
    assert report.is_symlink() and (tmp_path / "reports" / "r1" / "report.md").read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "report", "reports", "samples.fa"]
