"""Sequence embeddings from a model's hidden states: pooled or per token, any layers, chunk by chunk.

Every sequence is read after a `<bos>` token, as in training. Poolings (over the sequence's own
positions; `<bos>` is never part of a mean or of the per-token output):

- `mean`: the mean over the sequence's positions.
- `last`: the hidden state at the last position. For a causal model this is the only position that
  has read the whole sequence: the whole-sequence summary.
- `bos`: the hidden state at the `<bos>` position, a CLS-style summary. Only for bidirectional or
  RC-equivariant models, whose reverse pass brings the whole sequence to it; in a causal model that
  position has seen no residue, so every sequence would get the same vector (an error).
- `per-token`: one vector per token of the sequence (a token is a character for DNA and proteins and a
  SMILES token, e.g. `Cl` or `[nH]`, for molecules).

Layers are numbered as ESM numbers them: 0 is the token embedding, i the residual stream after block
i, `n_layers` (also -1) the final normalised hidden state, the default.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from biolm.errors import ArgumentError, ConfigError, InputError
from biolm.models import BioLM
from biolm.tokenizers import TokenizationError

POOLINGS = ("mean", "last", "bos", "per-token")


def tokenize_records(model: BioLM, records: Sequence[tuple[str, str]], source: str) -> list[np.ndarray]:
    """Token ids of each record; a bad character is an InputError naming file, record and position."""
    ids = []
    for record_id, sequence in records:
        try:
            ids.append(model.tokenizer.encode(sequence, record=record_id))
        except TokenizationError as err:
            raise InputError(f"{source}: {err.reason}") from None
    return ids


def resolve_layers(layers: int | str | Sequence[int] | None, n_layers: int) -> list[int]:
    """Absolute layer indices (0 .. n_layers) of `layers`: None (the last), an int, a list of ints,
    `"all"` or a comma list such as `"-1,-2"`; negative indices count from the end (-1 = n_layers).

    Raises:
        ConfigError: an index out of range, a repeated layer or text that is not a layer list.
    """
    if layers is None:
        return [n_layers]
    if isinstance(layers, str):
        if layers.strip().lower() == "all":
            return list(range(n_layers + 1))
        try:
            layers = [int(part) for part in layers.split(",")]
        except ValueError:
            raise ConfigError(
                f"layers {layers!r}: expected 'all' or comma-separated integers, e.g. -1,-2"
            ) from None
    if isinstance(layers, int | np.integer):
        layers = [int(layers)]
    out = []
    for layer in layers:
        if not -(n_layers + 1) <= layer <= n_layers:
            raise ConfigError(
                f"layer {layer} does not exist: the model has layers 0 (token embedding) to {n_layers} "
                f"(final), or -1 to {-(n_layers + 1)} from the end"
            )
        absolute = layer % (n_layers + 1)
        if absolute in out:
            raise ConfigError(f"layer {layer} is given twice (layer {absolute})")
        out.append(absolute)
    return out


@torch.no_grad()
def embed_ids(
    model: BioLM,
    sequences: Sequence[np.ndarray],
    *,
    batch_tokens: int = 32768,
    chunk_len: int = 4096,
    progress: bool = True,
    pool: str = "mean",
    layers: int | str | Sequence[int] | None = None,
    rc_average: bool = False,
) -> np.ndarray | list[np.ndarray]:
    """Embed token-id sequences (see the module docstring for poolings and layer numbers).

    Sequences are batched by length; a causal model's batch is fed `chunk_len` positions at a time with
    the recurrent state carried over, so memory depends on the chunk length, not on the sequence length
    (per-token output excepted, which is as long as the input). Bidirectional and reverse-complement
    models (`config.stateless`) see each sequence whole: their reverse pass needs the end first, so there
    is no state to carry, and rows are packed back to back (`cu_seqlens`) so that padding never enters a
    reverse pass.

    Args:
        model: a loaded `BioLM` with `model.tokenizer`.
        sequences: token ids of each sequence (without specials).
        batch_tokens: upper bound on (rows x padded length) per batch.
        chunk_len: positions per forward call (causal models).
        progress: show a tqdm bar (tokens).
        pool: "mean", "last", "bos" or "per-token".
        layers: None (the final hidden state), an int, a list of ints, "all" or "-1,-2"; see
            `resolve_layers`.
        rc_average: average each sequence's embedding with that of its reverse complement (DNA models;
            per-token vectors of the reverse strand are flipped back so that both describe the same base).

    Returns:
        In the input order. Pooled: [N, d_model] float32 when `layers` is None or an int, else
        [N, K, d_model] with the K layers in the order given. Per-token: a list of N arrays [L_i, d_model]
        or [L_i, K, d_model].

    Raises:
        ConfigError: an unknown pooling, `bos` with a causal model, bad layers, `rc_average` without a
            DNA tokenizer.
        ArgumentError: `batch_tokens` or `chunk_len` below 1.
    """
    # A chunk_len below 1 fed no position at all: all-zero embeddings (negative) or a traceback (0).
    for name, value in (("batch_tokens", batch_tokens), ("chunk_len", chunk_len)):
        if value < 1:
            raise ArgumentError(f"{{{name}}} must be at least 1, got {value}", name)
    if pool not in POOLINGS:
        raise ConfigError(f"pool {pool!r}: choose one of {', '.join(POOLINGS)}")
    if pool == "bos" and not model.config.stateless:
        raise ConfigError(
            "pool 'bos' is not meaningful for a causal model: its <bos> position is read before any "
            "residue, so every sequence gets the same vector; use 'last' (the position that has read "
            "the whole sequence) or 'mean'"
        )
    chosen = resolve_layers(layers, model.config.n_layers)
    squeeze = layers is None or isinstance(layers, int | np.integer)
    sequences = [np.asarray(s, dtype=np.int64) for s in sequences]
    if rc_average:
        if not hasattr(model.tokenizer, "reverse_complement"):
            raise ConfigError(f"rc_average needs a DNA model; this one reads {model.tokenizer.kind}")
        sequences = sequences + [model.tokenizer.reverse_complement(s) for s in sequences]
    bar = tqdm(
        total=sum(len(s) for s in sequences),
        unit="tok",
        unit_scale=True,
        desc="embedding",
        disable=not progress,
    )
    try:
        out = _embed_all(model, sequences, pool, chosen, batch_tokens, chunk_len, bar)
    finally:
        bar.close()
    if rc_average:
        n = len(sequences) // 2
        if pool == "per-token":
            # Position t of the reverse complement is base L - 1 - t of the forward strand.
            out = [(fwd + rev[::-1]) / 2 for fwd, rev in zip(out[:n], out[n:], strict=True)]
        else:
            out = (out[:n] + out[n:]) / 2
    if squeeze:
        out = [x[:, 0] for x in out] if pool == "per-token" else out[:, 0]
    return out


def _embed_all(
    model: BioLM,
    sequences: list[np.ndarray],
    pool: str,
    layers: list[int],
    batch_tokens: int,
    chunk_len: int,
    bar: tqdm,
) -> np.ndarray | list[np.ndarray]:
    """Pooled [N, K, d] float32 or per-token list of [L_i, K, d], in the input order."""
    device = next(model.parameters()).device
    bos, pad = model.tokenizer.bos_id, model.tokenizer.pad_id
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    per_token = pool == "per-token"
    out: np.ndarray | list = (
        [None] * len(sequences)
        if per_token
        else np.zeros((len(sequences), len(layers), model.config.d_model), dtype=np.float32)
    )
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and (stop - start + 1) * (len(sequences[order[stop]]) + 1) <= batch_tokens:
            stop += 1
        rows = order[start:stop]
        longest = max(len(sequences[i]) for i in rows) + 1
        ids = torch.full((len(rows), longest), pad, dtype=torch.long)
        lengths = torch.tensor([len(sequences[i]) for i in rows])
        ids[:, 0] = bos
        for r, i in enumerate(rows):
            ids[r, 1 : len(sequences[i]) + 1] = torch.from_numpy(sequences[i])
        embed = _embed_packed if model.config.stateless else _embed_chunked
        result = embed(model, ids, lengths, device, pool, layers, chunk_len)
        if per_token:
            for r, i in enumerate(rows):
                out[i] = result[r]
        else:
            out[rows] = result
        bar.update(int(lengths.sum()))
        start = stop
    return out


def _select(model: BioLM, ids: torch.Tensor, layers: list[int], **kwargs) -> tuple[torch.Tensor, object]:
    """Hidden states [B, S, K, d] float32 of the chosen layers, and the new state."""
    final_only = layers == [model.config.n_layers]
    result = model(ids, output_hidden_states=not final_only, **kwargs)
    if final_only:
        return result.hidden.float()[:, :, None], result.state
    return torch.stack([result.hidden_states[k].float() for k in layers], dim=2), result.state


def _embed_chunked(
    model: BioLM,
    ids: torch.Tensor,
    lengths: torch.Tensor,
    device: torch.device,
    pool: str,
    layers: list[int],
    chunk_len: int,
) -> np.ndarray | list[np.ndarray]:
    """Causal model: ids [R, L] (<bos> first, right-padded) fed `chunk_len` positions at a time.

    Right padding cannot change earlier positions of a causal model; it is only left out of the pooling.
    """
    rows, longest = ids.shape
    positions = torch.arange(longest)
    keep = ((positions >= 1) & (positions <= lengths[:, None])).float().to(device)
    total = torch.zeros(rows, len(layers), model.config.d_model, device=device)
    pieces: list[list[np.ndarray]] = [[] for _ in range(rows)]
    state = None
    for c in range(0, longest, chunk_len):
        hidden, state = _select(model, ids[:, c : c + chunk_len].to(device), layers, state=state)
        width = hidden.shape[1]
        if pool == "mean":
            total += (hidden * keep[:, c : c + width, None, None]).sum(dim=1)
        elif pool == "last":
            # The last residue sits at index `length` (after <bos>); an empty sequence keeps <bos>.
            for r in range(rows):
                if c <= int(lengths[r]) < c + width:
                    total[r] = hidden[r, int(lengths[r]) - c]
        else:
            for r in range(rows):
                lo, hi = max(1 - c, 0), min(int(lengths[r]) + 1 - c, width)
                if hi > lo:
                    pieces[r].append(hidden[r, lo:hi].cpu().numpy())
    if pool == "per-token":
        empty = np.zeros((0, len(layers), model.config.d_model), np.float32)
        return [np.concatenate(p) if p else empty for p in pieces]
    if pool == "mean":
        total /= lengths[:, None, None].to(device).float()
    return total.cpu().numpy()


def _embed_packed(
    model: BioLM,
    ids: torch.Tensor,
    lengths: torch.Tensor,
    device: torch.device,
    pool: str,
    layers: list[int],
    chunk_len: int = 0,
) -> np.ndarray | list[np.ndarray]:
    """Bidirectional/RC model: whole sequences of ids [R, L] (<bos> first) packed into one row."""
    rows = [ids[r, : int(n) + 1] for r, n in enumerate(lengths)]
    bounds = torch.tensor([0] + [len(x) for x in rows]).cumsum(0)
    packed = torch.cat(rows)[None].to(device)
    hidden = _select(model, packed, layers, cu_seqlens=bounds.to(device))[0][0]
    spans = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    if pool == "per-token":
        return [hidden[a + 1 : b].cpu().numpy() for a, b in spans]
    if pool == "mean":
        vectors = [hidden[a + 1 : b].mean(0) for a, b in spans]
    elif pool == "last":
        vectors = [hidden[b - 1] for a, b in spans]
    else:
        vectors = [hidden[a] for a, b in spans]
    return torch.stack(vectors).cpu().numpy()
