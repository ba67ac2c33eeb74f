"""`biolm.embed`: embeddings of a file or of in-memory sequences in one call."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biolm.domains import domain_of
from biolm.inference.embed_ids import embed_ids, resolve_layers, tokenize_records
from biolm.io.records import read_records, records_from_sequences, safe_unique_ids
from biolm.models import BioLM


@dataclass
class Embeddings:
    """What `biolm.embed` returns.

    Attributes:
        vectors: pooled: [N, d_model] float32 for one layer given as an int (or the default), else
            [N, K, d_model] with the layers in `layers` order; per-token: a list of N arrays [L_i, d_model]
            (or [L_i, K, d_model]).
        ids: N sanitized, unique ids in input order (see `biolm.io.records.safe_unique_ids`).
        headers: the N original headers / ids.
        layers: the K absolute layer indices (0 = token embedding, n_layers = final hidden state).
        pool: the pooling used.
    """

    vectors: np.ndarray | list[np.ndarray]
    ids: list[str]
    headers: list[str]
    layers: list[int]
    pool: str

    def __len__(self) -> int:
        return len(self.ids)


def embed(
    model: BioLM | str | os.PathLike,
    sequences: str | os.PathLike | Sequence[str] | Mapping[str, str],
    pool: str = "mean",
    layers: int | str | Sequence[int] | None = None,
    *,
    rc_average: bool = False,
    column: str | None = None,
    id_column: str | None = None,
    batch_tokens: int = 32768,
    chunk_len: int = 4096,
    device: str = "cpu",
    progress: bool = False,
) -> Embeddings:
    """Embed sequences with a biolm model.

    Example::

        emb = biolm.embed("runs/dna/model", "genes.fasta")         # emb.vectors: [N, d_model]
        emb = biolm.embed(model, {"a": "ACGT", "b": "GGCA"}, layers=[-1, -2])   # [2, 2, d_model]

    Args:
        model: a loaded `BioLM` (with `model.tokenizer`) or a model directory.
        sequences: a file (str or Path; FASTA, A3M, Stockholm, SMILES, CSV/TSV: see
            `biolm.io.records`), a list of sequence strings (ids seq_1, seq_2, ...) or a dict
            {id: sequence}. A single string is always a path.
        pool: "mean", "last" (causal models' whole-sequence summary), "bos" (bidirectional/RC models
            only) or "per-token"; see `biolm.inference.embed_ids`.
        layers: None (the final hidden state), an int, a list such as [-1, -2], or "all".
        rc_average: DNA only: average with the reverse complement's embedding.
        column, id_column: table columns of the sequences and of the ids (auto-detected if None).
        batch_tokens, chunk_len: batching and chunking (memory), as in `embed_ids`.
        device: where to load a model given as a directory.
        progress: show a progress bar.

    Returns:
        `Embeddings`, rows in input order.

    Raises:
        InputError: unreadable input (one line naming file and record).
        ConfigError: a bad pool, layer or `rc_average` request.
    """
    if not isinstance(model, BioLM):
        from biolm.models.io import load

        model = load(model, device=device)
    rules = domain_of(model.tokenizer).records
    if isinstance(sequences, str | os.PathLike):
        source = str(sequences)
        records = read_records(Path(sequences), rules, column=column, id_column=id_column)
    else:
        source = "input"
        records = records_from_sequences(sequences, rules)
    ids = tokenize_records(model, [(r.name, r.sequence) for r in records], source)
    vectors = embed_ids(
        model,
        ids,
        batch_tokens=batch_tokens,
        chunk_len=chunk_len,
        progress=progress,
        pool=pool,
        layers=layers,
        rc_average=rc_average,
    )
    return Embeddings(
        vectors=vectors,
        ids=safe_unique_ids([r.name for r in records]),
        headers=[r.header for r in records],
        layers=resolve_layers(layers, model.config.n_layers),
        pool=pool,
    )
