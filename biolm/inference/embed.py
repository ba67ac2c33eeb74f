"""Sequence embeddings: mean-pooled final hidden states, computed chunk by chunk."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from biolm.errors import InputError
from biolm.models import BioLM
from biolm.tokenizers import TokenizationError


def tokenize_records(model: BioLM, records: Sequence[tuple[str, str]], source: str) -> list[np.ndarray]:
    """Token ids of each record; a bad character is an InputError naming file, record and position."""
    ids = []
    for record_id, sequence in records:
        try:
            ids.append(model.tokenizer.encode(sequence, record=record_id))
        except TokenizationError as err:
            raise InputError(f"{source}: {err}") from None
    return ids


@torch.no_grad()
def embed_ids(
    model: BioLM,
    sequences: Sequence[np.ndarray],
    *,
    batch_tokens: int = 32768,
    chunk_len: int = 4096,
    progress: bool = True,
) -> np.ndarray:
    """Mean of the final hidden states over each sequence's own positions.

    Every sequence is read after a `<bos>` token, as in training; the `<bos>` position is not pooled.
    Sequences are batched by length; a batch is fed `chunk_len` positions at a time with the recurrent
    state carried over, so memory depends on the chunk length, not on the sequence length.
    Bidirectional and reverse-complement models (`config.stateless`) see each sequence whole: their
    reverse pass needs the end first, so there is no state to carry, and rows are packed back to back
    (`cu_seqlens`) so that padding never enters a reverse pass.

    Args:
        model: a loaded `BioLM` with `model.tokenizer`.
        sequences: token ids of each sequence (without specials).
        batch_tokens: upper bound on (rows x padded length) per batch.
        chunk_len: positions per forward call.

    Returns:
        [N, d_model] float32, in the input order.
    """
    device = next(model.parameters()).device
    bos, pad = model.tokenizer.bos_id, model.tokenizer.pad_id
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    out = np.zeros((len(sequences), model.config.d_model), dtype=np.float32)
    bar = tqdm(
        total=sum(len(s) for s in sequences),
        unit="tok",
        unit_scale=True,
        desc="embedding",
        disable=not progress,
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
            ids[r, 1 : len(sequences[i]) + 1] = torch.from_numpy(np.asarray(sequences[i], dtype=np.int64))
        if model.config.stateless:
            out[rows] = _embed_packed(model, ids, lengths, device)
            bar.update(int(lengths.sum()))
            start = stop
            continue
        # Causal model: right padding cannot change earlier positions; it is only masked out of the mean.
        positions = torch.arange(longest)
        keep = ((positions >= 1) & (positions <= lengths[:, None])).float()
        total = torch.zeros(len(rows), model.config.d_model, device=device)
        state = None
        for c in range(0, longest, chunk_len):
            result = model(ids[:, c : c + chunk_len].to(device), state=state)
            state = result.state
            total += (result.hidden.float() * keep[:, c : c + chunk_len, None].to(device)).sum(dim=1)
        out[rows] = (total / lengths[:, None].to(device).float()).cpu().numpy()
        bar.update(int(lengths.sum()))
        start = stop
    bar.close()
    return out


def _embed_packed(model: BioLM, ids: torch.Tensor, lengths: torch.Tensor, device) -> np.ndarray:
    """Mean-pooled hidden states of whole sequences packed into one row; ids [R, L] with <bos> first."""
    rows = [ids[r, : int(n) + 1] for r, n in enumerate(lengths)]
    bounds = torch.tensor([0] + [len(x) for x in rows]).cumsum(0)
    packed = torch.cat(rows)[None].to(device)
    hidden = model(packed, cu_seqlens=bounds.to(device)).hidden[0].float()
    # Each document's mean skips its <bos> position.
    means = [hidden[int(a) + 1 : int(b)].mean(0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return torch.stack(means).cpu().numpy()
