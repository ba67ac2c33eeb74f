"""Every writer round-trips; the manifest follows the input order; a failed write leaves nothing."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from biolm.errors import InputError
from biolm.inference.writers import manifest_path, write_embeddings

IDS = ["b", "a", "c_2"]
HEADERS = ["b second", "a", "c\tweird header"]


def _pooled(layers: int) -> np.ndarray:
    shape = (3, 4) if layers == 1 else (3, layers, 4)
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def _per_token(layers: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.normal(size=(n, 4) if layers == 1 else (n, layers, 4)).astype(np.float32) for n in (5, 1, 3)]


def _read(path, pool: str, layers: list[int]):
    """{layer: [N, d] or list of [L_i, d]}, ids, headers as each format's reader sees them."""
    suffix = path.suffix
    if suffix == ".npy":
        array = np.load(path)
        return {k: array if array.ndim == 2 else array[:, j] for j, k in enumerate(layers)}, None, None
    if suffix == ".parquet":
        import json

        import pyarrow.parquet as pq

        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[b"biolm"])
        assert meta == {"pool": pool, "layers": layers}
        assert table["row"].to_pylist() == [0, 1, 2]
        out = {k: np.stack(table[f"layer_{k}"].to_numpy(zero_copy_only=False)) for k in layers}
        return out, table["id"].to_pylist(), table["header"].to_pylist()
    if suffix == ".h5":
        import h5py

        with h5py.File(path) as f:
            assert f.attrs["pool"] == pool and list(f.attrs["layers"]) == layers
            ids = [x.decode() for x in f["ids"][:]]
            headers = [x.decode() for x in f["headers"][:]]
            if pool == "per-token":
                off = f["offsets"][:]
                out = {
                    k: [f[f"layer_{k}"][a:b] for a, b in zip(off[:-1], off[1:], strict=True)] for k in layers
                }
            else:
                out = {k: f[f"layer_{k}"][:] for k in layers}
        return out, ids, headers
    import torch

    data = torch.load(path)
    assert data["pool"] == pool and data["layers"] == layers
    emb = data["embeddings"]
    out = {k: [t.numpy() for t in v] if pool == "per-token" else v.numpy() for k, v in emb.items()}
    return out, data["ids"], data["headers"]


def _assert_same(got, vectors, layers, pool) -> None:
    for j, k in enumerate(layers):
        if pool == "per-token":
            expected = [v if v.ndim == 2 else v[:, j] for v in vectors]
            assert len(got[k]) == 3
            for g, e in zip(got[k], expected, strict=True):
                np.testing.assert_array_equal(g, e)
        else:
            np.testing.assert_array_equal(got[k], vectors if vectors.ndim == 2 else vectors[:, j])


@pytest.mark.parametrize("suffix", [".npy", ".parquet", ".h5", ".pt"])
@pytest.mark.parametrize("layers", [[2], [2, 0]])
def test_pooled_round_trip(tmp_path, suffix, layers):
    vectors = _pooled(len(layers))
    out = tmp_path / f"emb{suffix}"
    write_embeddings(out, vectors, IDS, HEADERS, layers, "mean")
    got, ids, headers = _read(out, "mean", layers)
    _assert_same(got, vectors, layers, "mean")
    if ids is not None:
        assert ids == IDS and headers == HEADERS
    assert manifest_path(out).name == "emb.manifest.tsv"
    # The header is kept as it was, its tab quoted: csv reads one row per record.
    with open(manifest_path(out), newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    assert rows == [
        ["row", "id", "header"],
        ["0", "b", "b second"],
        ["1", "a", "a"],
        ["2", "c_2", "c\tweird header"],
    ]
    assert (tmp_path / "emb.ids.txt").read_text().split() == IDS


@pytest.mark.parametrize("suffix", [".h5", ".pt"])
@pytest.mark.parametrize("layers", [[2], [1, 2]])
def test_per_token_round_trip(tmp_path, suffix, layers):
    vectors = _per_token(len(layers))
    out = tmp_path / f"tok{suffix}"
    write_embeddings(out, vectors, IDS, HEADERS, layers, "per-token")
    got, ids, headers = _read(out, "per-token", layers)
    _assert_same(got, vectors, layers, "per-token")
    assert ids == IDS and headers == HEADERS


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_per_token_needs_h5_or_pt(tmp_path, suffix):
    with pytest.raises(InputError, match="pool per-token needs .h5 or .pt"):
        write_embeddings(tmp_path / f"x{suffix}", _per_token(1), IDS, HEADERS, [2], "per-token")
    assert not any(tmp_path.iterdir())


def test_unknown_output_extension(tmp_path):
    with pytest.raises(InputError, match=r"unknown output extension \.csv"):
        write_embeddings(tmp_path / "x.csv", _pooled(1), IDS, HEADERS, [2], "mean")


@pytest.mark.parametrize("suffix", [".h5", ".npy"])
def test_a_writer_that_fails_midway_leaves_nothing(tmp_path, monkeypatch, suffix):
    import h5py

    out = tmp_path / f"emb{suffix}"
    previous = {".h5": b"\x89HDF\r\n\x1a\n", ".npy": b"\x93NUMPY"}[suffix] + b"previous run"
    out.write_bytes(previous)  # an earlier output of the format: replaceable, but must survive untouched
    calls = []

    def failing_h5(self, name, **kwargs):
        calls.append(name)
        if len(calls) == 3:  # after ids and headers were written to the temporary file
            raise RuntimeError("disk full")
        return original_h5(self, name, **kwargs)

    def failing_save(handle, array):
        handle.write(b"\x93NUMPY half")
        calls.append("save")
        raise RuntimeError("disk full")

    original_h5 = h5py.Group.create_dataset
    monkeypatch.setattr(h5py.Group, "create_dataset", failing_h5)
    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        write_embeddings(out, _pooled(1), IDS, HEADERS, [2], "mean")
    assert calls  # the writer really started
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    assert out.read_bytes() == previous
