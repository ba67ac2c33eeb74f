"""Turning token arrays into training examples: multi-span fill-in-the-middle, in-context family packing,
and padding a list of examples into a batch. Pure functions on numpy arrays; no file access.

An example is a dict of 1-D int64 tensors of one length S: `input_ids`, `labels` (the next token,
IGNORE_INDEX where there is no loss) and optionally `position_ids`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from biolm.data.layout import DEFAULT_LAYOUT, Layout
from biolm.errors import ConfigError
from biolm.tokenizers.base import PAD_ID

IGNORE_INDEX = -100


def check_seq_len(seq_len: int, least: int = 2) -> None:
    """data.seq_len must hold `<bos>` and at least one base (or residue)."""
    if seq_len < least:
        raise ConfigError(f"data.seq_len must be at least {least}, got {seq_len}")


def sample_spans(length: int, max_spans: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """1 to `max_spans` non-empty, non-adjacent, sorted spans [start, end) inside [0, length).

    The count is uniform over what fits; the 2n span ends are distinct cut points drawn uniformly, so
    spans vary in size from one residue to most of the sequence.
    """
    fits = min(max_spans, (length + 1) // 2)
    if fits < 1:
        return []
    n = int(rng.integers(1, fits + 1))
    cuts = np.sort(rng.choice(length + 1, size=2 * n, replace=False))
    return [(int(cuts[2 * j]), int(cuts[2 * j + 1])) for j in range(n)]


def fim_format(ids: np.ndarray, spans: Sequence[tuple[int, int]], sentinels: Sequence[int]) -> np.ndarray:
    """Multi-span fill-in-the-middle: each span is replaced in place by its sentinel, and the spans
    follow at the end, each after its own sentinel.

    `A B C D E F G` with spans (1, 3), (4, 5) and sentinels s1, s2 becomes
    `A s1 D s2 F G s1 B C s2 E`. BOS/EOS are the caller's.

    Args:
        ids: [L] residue ids.
        spans: sorted, non-overlapping [start, end) ranges with start < end.
        sentinels: at least `len(spans)` sentinel ids; span j uses `sentinels[j]`.

    Returns:
        [L + 2 * len(spans)] int64 ids.
    """
    if len(spans) > len(sentinels):
        raise ValueError(f"{len(spans)} spans but only {len(sentinels)} sentinel tokens")
    body, tail, previous = [], [], 0
    for (start, end), sentinel in zip(spans, sentinels, strict=False):
        if not previous <= start < end <= len(ids):
            raise ValueError(f"spans must be sorted, non-overlapping and non-empty; got {list(spans)}")
        body += [ids[previous:start], [sentinel]]
        tail += [[sentinel], ids[start:end]]
        previous = end
    body.append(ids[previous:])
    return np.concatenate([np.asarray(part, dtype=np.int64) for part in body + tail])


def fim_restore(ids: np.ndarray, sentinels: Sequence[int]) -> np.ndarray:
    """Invert `fim_format`: put each span back in place of its sentinel.

    Raises:
        ValueError: `ids` is not in the format (sentinels out of order, or one without its span).
    """
    ids = np.asarray(ids, dtype=np.int64)
    where = np.flatnonzero(np.isin(ids, np.asarray(sentinels, dtype=np.int64)))
    if len(where) % 2:
        raise ValueError("not a fill-in-the-middle sequence: a sentinel has no matching span")
    n = len(where) // 2
    body_at, tail_at = where[:n], where[n:]
    if list(ids[body_at]) != list(sentinels[:n]) or list(ids[tail_at]) != list(sentinels[:n]):
        raise ValueError("not a fill-in-the-middle sequence: sentinels out of order")
    tail_bounds = [*tail_at, len(ids)]
    spans = [ids[tail_bounds[j] + 1 : tail_bounds[j + 1]] for j in range(n)]
    body_bounds = [-1, *body_at, tail_at[0] if n else len(ids)]
    parts = []
    for j in range(n + 1):
        parts.append(ids[body_bounds[j] + 1 : body_bounds[j + 1]])
        if j < n:
            parts.append(spans[j])
    return np.concatenate(parts) if parts else ids[:0]


def next_token_example(
    tokens: np.ndarray, loss_mask: np.ndarray | None = None, position_ids: np.ndarray | None = None
) -> dict[str, torch.Tensor]:
    """Inputs `tokens[:-1]`, labels `tokens[1:]` (IGNORE_INDEX where `loss_mask[:-1]` is False).

    Args:
        tokens: [T] ids including BOS and the final EOS.
        loss_mask: [T] bool, per input position: whether the next token is a target.
        position_ids: [T] positions of the input tokens (the last entry is unused).
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    labels = tokens[1:].copy()
    if loss_mask is not None:
        labels[~np.asarray(loss_mask[:-1], dtype=bool)] = IGNORE_INDEX
    example = {"input_ids": torch.from_numpy(tokens[:-1].copy()), "labels": torch.from_numpy(labels)}
    if position_ids is not None:
        example["position_ids"] = torch.from_numpy(np.asarray(position_ids[:-1], dtype=np.int64).copy())
    return example


def pack_members(
    members: Sequence[np.ndarray], budget: int, loss_after_members: int = 0, layout: Layout = DEFAULT_LAYOUT
) -> tuple[dict[str, torch.Tensor], int]:
    """In-context packing: as many members as fit, laid out by `layout` (`biolm.data.layout`:
    `<bos> m1 <sep> m2 <sep> ... mk <eos>`, positions restarting on each delimiter).

    The first member is cropped to fit if it alone exceeds the budget; later members are whole or left
    out. The loss is on the tokens that a segment predicts (its residues and the delimiter that ends
    it), only for segments `loss_after_members` and later.

    Args:
        members: [L_j] residue ids of each member, in packing order.
        budget: maximum example length S (inputs and labels).
        loss_after_members: k; no loss on the first k members (their tokens are context only).
        layout: the in-context layout.

    Returns:
        The example ([S'] tensors, S' <= budget, with `position_ids`) and the number of members packed.
    """
    # The example's inputs are the stream less its last token: a stream of budget + 1 tokens fills it.
    stream_budget = budget + 1
    members = list(members)
    if members and layout.stream_tokens([len(members[0])]) > stream_budget:
        members[0] = members[0][: max(stream_budget - layout.stream_tokens([0]), 0)]
    count = len(layout.choose([len(m) for m in members], stream_budget))
    stream = layout.closed(members[:count])
    return next_token_example(stream.ids, stream.members >= loss_after_members, stream.positions), count


def pad_batch(examples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack examples of different lengths, right-padded to the longest: `input_ids` with <pad>,
    `labels` with IGNORE_INDEX, `position_ids` with 0. Returns [B, S_max] tensors."""
    length = max(len(e["input_ids"]) for e in examples)
    fill = {"input_ids": PAD_ID, "labels": IGNORE_INDEX, "position_ids": 0}
    batch = {}
    for key in examples[0]:
        out = torch.full((len(examples), length), fill[key], dtype=torch.long)
        for row, example in enumerate(examples):
            out[row, : len(example[key])] = example[key]
        batch[key] = out
    return batch
