"""Reverse complement (RC) for DNA models: RC-equivariance by parameter sharing, and post-hoc conjoining.

RC of token ids reverses the sequence and complements each id (`ModelConfig.complement`); RC of
per-position outputs (logits, log-probs) reverses the sequence and permutes the vocabulary axis by
the same complement. A model is RC-equivariant when `model(RC(ids)) == RC(model(ids))`.

RC-equivariance by parameter sharing (Caduceus RCPS). The residual stream of width `d_model` is two
halves of width `d_model / 2`: the first carries the forward strand, the second the reverse-complement
strand, each position holding that strand's features at the same base. Embedding: the first half
embeds the token, the second its complement. Every block (m, s, a, t alike) runs with the same weights
on the first half and, reading it from the other end, on the second half; norms act on each half
with shared weights. RCPS layers never mix the halves, so the stack reduces exactly to running the
half-width blocks over `ids` and over `RC(ids)` (one batched call) and flipping the second result
back. LM head: `logits[t, v] = W[v] . h_fwd[t] + W[comp(v)] . h_rc[t]`. Swapping the halves and
flipping the sequence (`reverse_complement_hidden`) is the RC of the hidden states.

The RC half reads the sequence from the end, so at position t it has seen every later base: an
RC-equivariant model is a bidirectional model and must be trained with a masked (MLM) objective,
usually together with `bidirectional`. Right-padded batches become left-padded under RC, so pack
variable-length sequences with `cu_seqlens` (each document is reverse-complemented in place).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from biolm.models.bidirectional import flip_sequence, reverse_positions

Trunk = Callable[[torch.Tensor, "torch.Tensor | None", "torch.Tensor | None"], torch.Tensor]


def _table(complement: torch.Tensor | Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.as_tensor(complement, dtype=torch.long, device=device)


def reverse_complement(
    ids: torch.Tensor, complement: torch.Tensor | Sequence[int], cu_seqlens: torch.Tensor | None = None
) -> torch.Tensor:
    """RC of token ids.

    Args:
        ids: [B, S] int.
        complement: [V] complement id of each id.
        cu_seqlens: optional [N + 1] offsets of documents packed into one row (B = 1); each document is
            reverse-complemented in place.

    Returns:
        [B, S], same dtype.
    """
    return _table(complement, ids.device)[flip_sequence(ids, cu_seqlens).long()].to(ids.dtype)


def reverse_complement_logits(
    logits: torch.Tensor, complement: torch.Tensor | Sequence[int], cu_seqlens: torch.Tensor | None = None
) -> torch.Tensor:
    """RC of per-position vocabulary scores: reverse the sequence, permute the vocabulary by `complement`.

    Args:
        logits: [B, S, V] (logits or log-probs).
        complement: [V].
        cu_seqlens: optional [N + 1] offsets of packed documents (B = 1).

    Returns:
        [B, S, V].
    """
    return flip_sequence(logits, cu_seqlens)[..., _table(complement, logits.device)]


def reverse_complement_hidden(hidden: torch.Tensor, cu_seqlens: torch.Tensor | None = None) -> torch.Tensor:
    """RC of an RC-equivariant model's hidden states: reverse the sequence, swap the two halves.

    Args:
        hidden: [B, S, d] with d even.
        cu_seqlens: optional [N + 1] offsets of packed documents (B = 1).

    Returns:
        [B, S, d].
    """
    first, second = flip_sequence(hidden, cu_seqlens).chunk(2, dim=-1)
    return torch.cat([second, first], dim=-1)


def rc_equivariant_forward(
    trunk: Trunk,
    head: nn.Module,
    ids: torch.Tensor,
    complement: torch.Tensor,
    cu_seqlens: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run both strands through shared weights and combine them so the result is RC-equivariant.

    Args:
        trunk: `trunk(ids, cu_seqlens, position_ids) -> hidden [B', S', d/2]`: embedding, blocks and
            final norm at half width.
        head: linear map d/2 -> V (no bias).
        ids: [B, S] int.
        complement: [V] long.
        cu_seqlens: optional [N + 1] offsets of packed documents (B = 1).
        position_ids: optional [B, S] RoPE positions of the forward strand; the RC strand gets
            `reverse_positions` of them.

    Returns:
        logits [B, S, V] and hidden [B, S, d] (forward half, then RC half in forward coordinates).
    """
    S = ids.shape[1]
    rc_ids = reverse_complement(ids, complement, cu_seqlens)
    rc_pos = reverse_positions(position_ids, cu_seqlens)
    if cu_seqlens is None:
        pos = None if position_ids is None else torch.cat([position_ids, rc_pos])
        fwd, rc = trunk(torch.cat([ids, rc_ids]), None, pos).chunk(2)
    else:
        # Packed rows must keep B = 1: the RC strand's documents follow in the same row.
        cu = cu_seqlens.to(torch.long)
        pos = None if position_ids is None else torch.cat([position_ids, rc_pos], dim=1)
        both = trunk(torch.cat([ids, rc_ids], dim=1), torch.cat([cu, cu[1:] + S]), pos)
        fwd, rc = both[:, :S], both[:, S:]
    rc = flip_sequence(rc, cu_seqlens)  # the RC strand's features, aligned with the forward strand
    logits = head(fwd) + head(rc)[..., complement]
    return logits, torch.cat([fwd, rc], dim=-1)


def conjoin(
    model: nn.Module,
    ids: torch.Tensor,
    complement: torch.Tensor | Sequence[int] | None = None,
    cu_seqlens: torch.Tensor | None = None,
) -> torch.Tensor:
    """Post-hoc conjoining: average a model's predictions over both strands.

    Runs `model` on `ids` and on `RC(ids)`, maps the second result back with `reverse_complement_logits`
    and averages the two **log-probabilities** per position, then renormalises:
    `log_softmax((log p(x) + RC(log p(RC(x)))) / 2)`, the normalised geometric mean of the two strands'
    distributions. (Averaging logits instead gives the same result after renormalising, since
    log_softmax only shifts each position's scores.) The result is RC-symmetric:
    `conjoin(RC(x)) == RC(conjoin(x))`.

    Each output row t is read as a prediction for position t itself (masked LM, per-base labels). For
    a causal LM, row t predicts token t + 1 on the forward strand but token t - 1 on the other, so
    conjoining its next-token outputs mixes two different targets. For an RC-equivariant model it
    changes nothing. Gradients flow; wrap the call in `torch.no_grad()` for inference.

    Args:
        model: a `BioLM` (any config); called as `model(ids, cu_seqlens=...)`.
        ids: [B, S] int.
        complement: [V] complement ids; defaults to `model.config.complement`.
        cu_seqlens: optional [N + 1] offsets of packed documents (B = 1).

    Returns:
        [B, S, V] log-probabilities, float32 (float64 for a float64 model).

    Raises:
        ValueError: no complement given and none in the model's config.
    """
    if complement is None:
        complement = getattr(getattr(model, "config", None), "complement", None)
        if complement is None:
            raise ValueError("conjoin needs a complement table (pass complement= or set model.complement)")

    def log_probs(x: torch.Tensor) -> torch.Tensor:
        logits = model(x, cu_seqlens=cu_seqlens).logits
        # Low-precision logits are upcast: the average of two log-probs should not lose digits.
        return F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)

    fwd, rev = log_probs(ids), log_probs(reverse_complement(ids, complement, cu_seqlens))
    return F.log_softmax((fwd + reverse_complement_logits(rev, complement, cu_seqlens)) / 2, dim=-1)
