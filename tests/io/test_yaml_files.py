"""The one YAML reader (biolm.io.yaml_files): bounded regular files, duplicate keys, alias bombs, and
scalars typed as OmegaConf types them."""

from __future__ import annotations

import os

import pytest

from biolm.errors import InputError
from biolm.io.yaml_files import MAX_YAML_NODES, parse_yaml, read_yaml


def test_scalars_are_typed_as_omegaconf_types_them():
    data = parse_yaml("lr: 1e-3\neps: 1.0e-05\nn: 1_000\nday: 2024-01-01\nnan: .nan\nname: dna\n", "c.yaml")
    assert data["lr"] == 1e-3 and isinstance(data["lr"], float)  # a string to PyYAML's YAML 1.1
    assert data["eps"] == 1e-5 and data["n"] == 1000
    assert data["day"] == "2024-01-01"  # no timestamps
    assert data["nan"] != data["nan"] and data["name"] == "dna"


def test_an_empty_document_is_none():
    assert parse_yaml("", "c.yaml") is None
    assert parse_yaml("# only a comment\n", "c.yaml") is None


@pytest.mark.parametrize(
    "text, parts",
    [
        ("name: a\nname: b\n", ["c.yaml", "duplicate key 'name' at line 2 (first at line 1)"]),
        ("model:\n  d_model: 1\n  n_layers: 2\n  d_model: 3\n", ["duplicate key 'model.d_model' at line 4"]),
        ("a:\n  - {x: 1, x: 2}\n", ["duplicate key 'a[0].x'"]),
    ],
)
def test_duplicate_keys_are_refused_with_key_and_line(text, parts):
    with pytest.raises(InputError) as info:
        parse_yaml(text, "c.yaml")
    for part in parts:
        assert part in str(info.value)


def test_merge_keys_may_be_overridden():
    data = parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n", "c.yaml")
    assert data["other"] == {"x": 3, "y": 2}


def test_a_billion_laughs_is_refused_without_expanding_it():
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    with pytest.raises(InputError, match=r"c.yaml: key 'a5': more than 100,000 values .* alias bomb"):
        parse_yaml("\n".join(lines) + "\n", "c.yaml")


def test_aliases_within_the_bound_are_expanded():
    text = "a: &a [1, 2, 3]\nb: [*a, *a]\n"
    assert parse_yaml(text, "c.yaml") == {"a": [1, 2, 3], "b": [[1, 2, 3], [1, 2, 3]]}


def test_a_long_plain_list_counts_too():
    with pytest.raises(InputError, match=f"more than {MAX_YAML_NODES:,} values"):
        parse_yaml("a: [" + "0, " * MAX_YAML_NODES + "0]\n", "c.yaml")


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n"])
def test_recursive_aliases_are_refused(text):
    with pytest.raises(InputError, match="c.yaml: key 'a.*recursive YAML alias"):
        parse_yaml(text, "c.yaml")


@pytest.mark.parametrize(
    "text, part",
    [
        ("a: [1\n", "not valid YAML at line 2, column 1"),
        ("a: 1\n---\nb: 2\n", "not valid YAML at line 2"),
        ("a: \x00\n", "not valid YAML (control characters are not allowed"),
        ("[" * 5000 + "]" * 5000, "not valid YAML"),
        ("x: !!python/object/apply:os.system [ls]\n", "could not determine a constructor"),
        # ValueError / KeyError tracebacks of PyYAML's constructors.
        ("a: !!int abc\n", "a tagged value that is not of its type"),
        ("a: !!bool maybe\n", "a tagged value that is not of its type"),
        ("a: " + "9" * 5000 + "\n", "a tagged value that is not of its type"),
    ],
)
def test_bad_documents_are_one_line(text, part):
    with pytest.raises(InputError) as info:
        parse_yaml(text, "c.yaml")
    assert part in str(info.value) and "\n" not in str(info.value)


def test_files_are_bounded_regular_files(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: a\n")
    assert read_yaml(path) == {"name": "a"}
    with pytest.raises(InputError, match=r"c.yaml: the config is 8 bytes, more than the 4 "):
        read_yaml(path, max_bytes=4)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(InputError, match=r"c.yaml: the model config is a FIFO \(named pipe\)"):
        read_yaml(path, "model config")
    path.unlink()
    path.symlink_to("/dev/zero")
    with pytest.raises(InputError, match="c.yaml: the config is a character device"):
        read_yaml(path)
    path.unlink()
    path.write_bytes(b"\xff\xfe\x00a")
    with pytest.raises(InputError, match=r"c.yaml: not a text \(UTF-8\) file"):
        read_yaml(path)
