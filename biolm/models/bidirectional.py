"""Bidirectional sequence mixing in linear time: a forward pass plus a pass over the flipped sequence.

Each block's sequence mixer (the mLSTM layer of an `m` block, the sLSTM / linear attention / attention
of `s`, `a`, `t`) runs twice with the same weights, once over the sequence and once over its reverse,
and the two outputs are summed position by position (as Caduceus' BiMamba does; DNA-xLSTM instead runs
whole blocks, residual and feed-forward included, both ways: `ModelConfig.bidirectional_scope="block"`,
done by the backbone with `bidirectional_mix` on each block):

    y = mixer(x) + flip(mixer(flip(x)))

Why per block and not per stack: every layer then sees both sides of each position, so depth builds
on bidirectional features (deep bidirectionality, as in Caduceus and DNA-xLSTM), while two separate
causal stacks merged at the top (ELMo) would leave every layer one-sided. Why shared weights: the
parameter count and layout stay those of the causal model (a causal checkpoint loads into a
bidirectional one for masked fine-tuning), and the cost is two linear-time passes per layer.
Position-wise parts of a block (norms, feed-forward) run once.

Packed input (`cu_seqlens`) flips each document in place, so documents stay isolated in both passes.
"""

from __future__ import annotations

import torch
from torch import nn

from biolm.kernels.varlen import segment_positions


def flip_sequence(x: torch.Tensor, cu_seqlens: torch.Tensor | None = None) -> torch.Tensor:
    """Reverse the sequence axis (dim 1), or each packed document in place.

    Args:
        x: [B, S, ...].
        cu_seqlens: optional [N + 1] offsets of documents packed into one row (B = 1).

    Returns:
        [B, S, ...]; with `cu_seqlens`, position p of document [a, b) holds x[:, a + b - 1 - p].
    """
    if cu_seqlens is None:
        return x.flip(1)
    doc, _ = segment_positions(cu_seqlens, x.shape[0], x.shape[1])
    cu = cu_seqlens.to(doc.device).long()
    index = cu[doc] + cu[doc + 1] - 1 - torch.arange(x.shape[1], device=doc.device)
    return x.index_select(1, index.to(x.device))


def reverse_positions(
    position_ids: torch.Tensor | None, cu_seqlens: torch.Tensor | None = None
) -> torch.Tensor | None:
    """Positions for the pass over the flipped sequence: `-flip(position_ids)`.

    RoPE depends only on differences of positions. Negating the flipped positions gives the reversed
    sequence increasing positions with the same spacing (member restarts included), i.e. what it would
    get if it were read in that direction; a constant offset changes nothing.

    Args:
        position_ids: [B, S] int, or None (the mixer then numbers the flipped sequence itself).
        cu_seqlens: optional [N + 1] offsets of packed documents (B = 1).

    Returns:
        [B, S] or None.
    """
    if position_ids is None:
        return None
    return -flip_sequence(position_ids, cu_seqlens)


def bidirectional_mix(
    mixer: nn.Module,
    x: torch.Tensor,
    cu_seqlens: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """`mixer(x) + flip(mixer(flip(x)))`, with both passes in one mixer call.

    Args:
        mixer: a module called as `mixer(x, state, cu_seqlens, position_ids) -> (y, state)`.
        x: [B, S, d].
        cu_seqlens: optional [N + 1] offsets of documents packed into one row (B = 1).
        position_ids: optional [B, S] int positions (RoPE).

    Returns:
        [B, S, d].
    """
    S = x.shape[1]
    rev_x, rev_pos = flip_sequence(x, cu_seqlens), reverse_positions(position_ids, cu_seqlens)
    pos = (
        None
        if position_ids is None
        else torch.cat([position_ids, rev_pos], dim=0 if cu_seqlens is None else 1)
    )
    if cu_seqlens is None:
        # Both directions as one batch of 2B rows: the kernels run once.
        y, _ = mixer(torch.cat([x, rev_x]), None, None, pos)
        fwd, rev = y.chunk(2)
    else:
        # Packed rows must keep B = 1: append the flipped documents as further documents of the row.
        cu = cu_seqlens.to(torch.long)
        both_cu = torch.cat([cu, cu[1:] + S])
        y, _ = mixer(torch.cat([x, rev_x], dim=1), None, both_cu, pos)
        fwd, rev = y[:, :S], y[:, S:]
    return fwd + flip_sequence(rev, cu_seqlens)


def run_mixer(
    mixer: nn.Module,
    x: torch.Tensor,
    state,
    cu_seqlens: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    bidirectional: bool,
):
    """Call a block's mixer causally (with state) or bidirectionally (without).

    Returns:
        y [B, S, d] and the mixer's new state (None when bidirectional).

    Raises:
        ValueError: a state passed to a bidirectional mixer.
    """
    if not bidirectional:
        return mixer(x, state, cu_seqlens, position_ids)
    if state is not None:
        raise ValueError(
            "a bidirectional model has no recurrent state: its reverse pass needs the whole sequence"
        )
    return bidirectional_mix(mixer, x, cu_seqlens, position_ids), None
