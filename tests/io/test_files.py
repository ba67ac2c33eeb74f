"""biolm.io.files: gzip told by content, text encodings, FIFOs, and writers that never leave half a file."""

from __future__ import annotations

import codecs
import gzip
import os
import threading

import pytest

from biolm.errors import InputError
from biolm.io.files import (
    atomic_directory,
    atomic_file,
    base_name,
    input_file,
    is_temporary,
    open_binary,
    open_text,
    write_atomic,
    write_text_atomic,
)


def test_gzip_is_told_by_its_magic_bytes_not_its_name(tmp_path):
    packed = tmp_path / "packed.txt"  # gzip without .gz
    packed.write_bytes(gzip.compress(b">a\nACGT\n"))
    plain = tmp_path / "plain.fa.gz"  # .gz that is not gzip
    plain.write_bytes(b">a\nACGT\n")
    for path in (packed, plain):
        with open_text(path) as handle:
            assert handle.read() == ">a\nACGT\n"
        with open_binary(path) as handle:
            assert handle.read() == b">a\nACGT\n"


@pytest.mark.parametrize(
    "raw",
    [
        codecs.BOM_UTF8 + "id,név\n1,α\n".encode(),
        codecs.BOM_UTF16_LE + "id,név\n1,α\n".encode("utf-16-le"),
        codecs.BOM_UTF16_BE + "id,név\n1,α\n".encode("utf-16-be"),
        "id,név\n1,α\n".encode(),
    ],
    ids=["utf8-bom", "utf16-le", "utf16-be", "utf8"],
)
def test_text_encodings_with_and_without_a_bom(tmp_path, raw):
    path = tmp_path / "t.csv"
    path.write_bytes(raw)
    with open_text(path) as handle:
        assert handle.read() == "id,név\n1,α\n"
    path.write_bytes(gzip.compress(raw))
    with open_text(path) as handle:
        assert handle.read() == "id,név\n1,α\n"


def test_a_stray_byte_becomes_a_replacement_character(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"AC\xffGT\n")
    with open_text(path) as handle:
        assert handle.read() == "AC\ufffdGT\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("packed", [False, True])
def test_a_fifo_is_read_without_seeking(tmp_path, packed):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    data = b">a\nACGT\n>b\nGG\n"
    payload = gzip.compress(data) if packed else data

    def feed():
        with open(fifo, "wb") as writer:
            writer.write(payload)

    feeder = threading.Thread(target=feed)
    feeder.start()
    with open_text(input_file(fifo)) as handle:
        assert handle.read() == data.decode()
    feeder.join()


def test_input_file_names_what_is_wrong(tmp_path):
    with pytest.raises(InputError, match=r"missing\.fa: file not found"):
        input_file(tmp_path / "missing.fa")
    with pytest.raises(InputError, match=r"is a directory, not a file"):
        input_file(tmp_path)
    link = tmp_path / "link.fa"
    link.symlink_to(tmp_path / "gone.fa")
    with pytest.raises(InputError, match=r"link\.fa: a link to a missing file"):
        input_file(link)
    assert base_name("x/Genome.FA.gz") == "genome.fa"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.tsv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as temp:
        assert temp.parent == tmp_path and temp.suffix == ".tsv" and is_temporary(temp)
        temp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.tsv"]


def test_a_complete_write_replaces_the_target_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    write_text_atomic(target, "new ✓")
    assert target.read_text(encoding="utf-8") == "new ✓"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    write_atomic(target, lambda temp: temp.write_bytes(b"again"), durable=True)
    assert target.read_bytes() == b"again"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_atomic_directory_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as staging:
        (staging / "new.txt").write_text("new")
        raise RuntimeError("killed")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with atomic_directory(target) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
