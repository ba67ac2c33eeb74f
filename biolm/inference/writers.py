"""Embedding writers, chosen by the output's extension; every file is written atomically.

Layouts (N records, K layers, d = d_model; layers are absolute indices, 0 = token embedding,
n_layers = final hidden state):

    .npy      pooled only. [N, d] float32 for one layer, [N, K, d] for several (axis 1 in --layers order).
    .parquet  pooled only. Columns `row`, `id`, `header`, then one fixed-size list<float32>[d] column
              per layer, `layer_<index>`; the schema metadata `biolm` holds pool and layers (JSON).
    .h5       datasets `ids`, `headers` (UTF-8), one dataset per layer `layer_<index>`: pooled [N, d];
              per-token [T, d] with every record's tokens back to back, record r being rows
              `offsets[r]:offsets[r + 1]` of the dataset `offsets` [N + 1]. Attributes `pool`, `layers`.
    .pt       a dict {"ids", "headers", "layers", "pool", "embeddings": {layer: tensor [N, d]} or, per
              token, {layer: [tensor [L_i, d], ...]}} for `torch.load`.

Beside OUT: `OUT-without-suffix.manifest.tsv` (TSV with columns row, id, header: row r of the output
is the record with that sanitized unique id and its original header, quoted where it needs to be, in
input order) and `.ids.txt` (the ids, one per line). The three are placed by `biolm.io.outputs`' rule:
each may replace only an earlier file of its own kind, never an input.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from biolm.errors import ArgumentError, InputError
from biolm.io.files import atomic_file, output_stream
from biolm.io.outputs import (
    HDF5,
    ID_LIST,
    MANIFEST,
    NO_INPUTS,
    NPY,
    PARQUET,
    TORCH,
    Inputs,
    check_file_output,
)

FORMATS = (".npy", ".parquet", ".h5", ".pt")
EMBEDDING_FILES = {".npy": NPY, ".parquet": PARQUET, ".h5": HDF5, ".pt": TORCH}
PER_TOKEN_FORMATS = (".h5", ".hdf5", ".pt")


def output_format(path: Path, pool: str) -> str:
    """The writer for `path` (".npy", ".parquet", ".h5", ".pt"; ".hdf5" counts as ".h5").

    Raises:
        InputError: an unknown extension, or per-token output to a format that holds one row per record.
    """
    suffix = path.suffix.lower()
    suffix = ".h5" if suffix == ".hdf5" else suffix
    if suffix not in FORMATS:
        raise InputError(f"{path}: unknown output extension {suffix or '(none)'}; use {', '.join(FORMATS)}")
    if pool == "per-token" and suffix not in PER_TOKEN_FORMATS:
        raise ArgumentError(
            f"{path}: {{pool}} per-token needs .h5 or .pt output (a {suffix} file holds one row per record)",
            "pool",
        )
    return suffix


def manifest_path(output: Path) -> Path:
    return output.with_suffix(".manifest.tsv")


def ids_path(output: Path) -> Path:
    return output.with_suffix(".ids.txt")


def check_embedding_outputs(path: str | Path, pool: str, inputs: Inputs = NO_INPUTS) -> list[Path]:
    """OUT, its manifest and its id list checked as outputs (`biolm.io.outputs`: none may be an input,
    a directory, a device or a file of another format), so that a command can refuse them before any
    work; returns the three paths to write (through a link where one is a link).

    Raises:
        InputError: an unknown extension (`output_format`); OutputError: a path that cannot be written.
    """
    path = Path(path)
    kind = EMBEDDING_FILES[output_format(path, pool)]
    return [
        check_file_output(path, kind, inputs),
        check_file_output(manifest_path(path), MANIFEST, inputs, side_of=path),
        check_file_output(ids_path(path), ID_LIST, inputs, side_of=path),
    ]


def manifest_text(ids: Sequence[str], headers: Sequence[str]) -> str:
    """The manifest as TSV (columns row, id, header): a header is kept as it was, quoted as csv does
    where it holds a tab, a line break or a quote, so csv, pandas and pyarrow read one row per record."""
    buffer = io.StringIO()
    table = csv.writer(buffer, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    table.writerow(["row", "id", "header"])
    for row, (name, header) in enumerate(zip(ids, headers, strict=True)):
        table.writerow([row, name, header])
    return buffer.getvalue()


def by_layer(vectors, layers: Sequence[int], pool: str) -> dict[int, object]:
    """{layer: [N, d] array or list of [L_i, d]} from `embed_ids`'s output (layer axis squeezed or not)."""
    per_token = pool == "per-token"
    first = vectors[0] if per_token else vectors
    if first.ndim == 2:  # one layer, its axis squeezed
        return {layers[0]: vectors}
    if per_token:
        return {k: [v[:, j] for v in vectors] for j, k in enumerate(layers)}
    return {k: vectors[:, j] for j, k in enumerate(layers)}


def write_embeddings(
    path: str | Path,
    vectors,
    ids: Sequence[str],
    headers: Sequence[str],
    layers: Sequence[int],
    pool: str,
) -> list[Path]:
    """Write embeddings, the manifest and the id list; returns the paths written.

    Args:
        path: output file; its extension picks the layout (module docstring).
        vectors: as returned by `embed_ids` (pooled [N, d] or [N, K, d]; per-token list of [L_i, d] or
            [L_i, K, d]).
        ids: N sanitized unique ids; headers: N original headers.
        layers: the K absolute layer indices, in the order of the layer axis.
        pool: the pooling used.

    Raises:
        OutputError: OUT, the manifest or the id list cannot be placed (`check_embedding_outputs`).
    """
    fmt = output_format(Path(path), pool)
    path, manifest, id_list = check_embedding_outputs(path, pool)
    layered = by_layer(vectors, list(layers), pool)
    writer = {".npy": _npy, ".parquet": _parquet, ".h5": _h5, ".pt": _pt}[fmt]
    # All three are complete before any is renamed (OUT last): a full disk or a kill leaves the old
    # set, never a new OUT beside an old manifest. Each temporary is made just before it is written,
    # so a write error is reported by (and names) the file being written.
    with ExitStack() as files:
        out = files.enter_context(atomic_file(path))
        writer(out, vectors, layered, list(ids), list(headers), list(layers), pool)
        files.enter_context(atomic_file(manifest)).write_text(
            manifest_text(ids, headers), encoding="utf-8", newline=""
        )
        files.enter_context(atomic_file(id_list)).write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    return [path, manifest, id_list]


def _npy(tmp: Path, vectors, layered, ids, headers, layers, pool) -> None:
    # Not a plain file: numpy writes those with tofile, which ignores a short write (a full disk
    # would leave a truncated .npy and no error); to a stream it writes by `write`, which raises.
    with output_stream(tmp) as handle:
        np.save(handle, np.asarray(vectors, dtype=np.float32))


def _parquet(tmp: Path, vectors, layered, ids, headers, layers, pool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"row": pa.array(range(len(ids)), pa.int64()), "id": pa.array(ids), "header": pa.array(headers)}
    for k, array in layered.items():
        array = np.ascontiguousarray(array, dtype=np.float32)
        columns[f"layer_{k}"] = pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])
    table = pa.table(columns).replace_schema_metadata({"biolm": json.dumps({"pool": pool, "layers": layers})})
    pq.write_table(table, tmp)


def _h5(tmp: Path, vectors, layered, ids, headers, layers, pool) -> None:
    import h5py

    text = h5py.string_dtype("utf-8")
    # Through a Python file: HDF5 writing its own file crashes the process when the disk is full.
    with output_stream(tmp) as stream, h5py.File(stream, "w") as handle:
        handle.attrs["pool"] = pool
        handle.attrs["layers"] = np.asarray(layers, dtype=np.int64)
        handle.create_dataset("ids", data=np.asarray(ids, dtype=object), dtype=text)
        handle.create_dataset("headers", data=np.asarray(headers, dtype=object), dtype=text)
        if pool == "per-token":
            lengths = [len(v) for v in next(iter(layered.values()))]
            handle.create_dataset("offsets", data=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
        for k, array in layered.items():
            data = np.concatenate(array) if pool == "per-token" else array
            handle.create_dataset(f"layer_{k}", data=np.asarray(data, dtype=np.float32))


def _pt(tmp: Path, vectors, layered, ids, headers, layers, pool) -> None:
    import torch

    if pool == "per-token":
        embeddings = {k: [torch.from_numpy(np.asarray(v, np.float32)) for v in a] for k, a in layered.items()}
    else:
        embeddings = {k: torch.from_numpy(np.asarray(a, np.float32)) for k, a in layered.items()}
    payload = {"ids": ids, "headers": headers, "layers": layers, "pool": pool, "embeddings": embeddings}
    with output_stream(tmp) as stream:
        torch.save(payload, stream)
