"""Packed variable-length batches (`cu_seqlens`), shared by every op and by the models' packed paths.

Sequences of different lengths are concatenated into one row (B = 1); `cu_seqlens` [N + 1] holds the
cumulative offsets. Each segment runs as its own sequence, so the state resets at every boundary and
nothing crosses from one document to the next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar

import torch

State = TypeVar("State", bound=NamedTuple)


def segment_offsets(cu_seqlens: torch.Tensor, batch: int, seq: int) -> list[int]:
    """The validated offsets [0, ..., S] of a packed batch.

    Raises:
        ValueError: batch size not 1, not an integer vector, or offsets not rising from 0 to S.
    """
    if batch != 1:
        raise ValueError(f"cu_seqlens needs batch size 1 (packed sequences); got B={batch}")
    if cu_seqlens.dim() != 1 or cu_seqlens.numel() < 2 or cu_seqlens.is_floating_point():
        raise ValueError("cu_seqlens must be an integer tensor [N + 1] of cumulative offsets")
    offsets = cu_seqlens.tolist()
    rising = all(a <= b for a, b in zip(offsets[:-1], offsets[1:], strict=True))
    if offsets[0] != 0 or offsets[-1] != seq or not rising:
        raise ValueError(f"cu_seqlens must rise from 0 to S={seq}; got {offsets}")
    return offsets


def segment_positions(cu_seqlens: torch.Tensor, batch: int, seq: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each position of a packed row lies: its document and its index within that document.

    Args:
        cu_seqlens: [N + 1] cumulative offsets of the documents packed into one row.
        batch, seq: B (must be 1) and S of the packed input.

    Returns:
        doc [S] int64, the document index of each position, and pos [S] int64, the position within it.

    Raises:
        ValueError: batch size not 1 or invalid offsets.
    """
    offsets = segment_offsets(cu_seqlens, batch, seq)
    lengths = torch.tensor([b - a for a, b in zip(offsets[:-1], offsets[1:], strict=True)])
    doc = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    pos = torch.arange(seq) - torch.tensor(offsets[:-1])[doc]
    return doc.to(cu_seqlens.device), pos.to(cu_seqlens.device)


def run_packed(
    run_segment: Callable[[int, int, State | None], tuple[torch.Tensor, State]],
    cu_seqlens: torch.Tensor,
    *,
    batch: int,
    seq: int,
    state: State | None,
) -> tuple[torch.Tensor, State]:
    """Run each segment of a packed row and join the results.

    Args:
        run_segment: `(start, end, initial_state) -> (h [1, end - start, ...], final_state)`.
        cu_seqlens: [N + 1] cumulative offsets.
        batch, seq: B and S of the packed input.
        state: initial states with batch N (one per sequence), or None.

    Returns:
        h [1, S, ...] and the final states stacked over the N sequences.
    """
    offsets = segment_offsets(cu_seqlens, batch, seq)
    n_seq = len(offsets) - 1
    if state is not None and state[0].shape[0] != n_seq:
        raise ValueError(f"with cu_seqlens the initial state needs batch N={n_seq}; got {state[0].shape[0]}")
    outputs, finals = [], []
    for index, (start, end) in enumerate(zip(offsets[:-1], offsets[1:], strict=True)):
        segment_state = None if state is None else type(state)(*(s[index : index + 1] for s in state))
        h, final = run_segment(start, end, segment_state)
        outputs.append(h)
        finals.append(final)
    stacked = type(finals[0])(*(torch.cat(parts, dim=0) for parts in zip(*finals, strict=True)))
    return torch.cat(outputs, dim=1), stacked
