"""Logit filters and seeded sampling for the decoding engine (`biolm.inference.sample_tokens`).

Pure functions on [B, V] tensors; nothing here knows about models.
"""

from __future__ import annotations

import numpy as np
import torch

NEG_INF = float("-inf")


def filter_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus), then min-p; filtered tokens get -inf.

    The order is the one of Hugging Face's logits processors, so settings carry over. The most likely
    token always survives every filter. Temperature 0 is greedy decoding: only the most likely token
    survives (the first of tied ones), so any draw picks it and the other filters have no effect.

    Args:
        logits: [B, V] (any leading shape), -inf for tokens already excluded.
        temperature: >= 0 and finite; logits are divided by it (0: greedy, see above).
        top_k: keep the k highest logits (ties at the k-th value are all kept); None or >= V: no-op.
        top_p: keep the smallest set of most likely tokens whose probability reaches top_p; None or
            >= 1: no-op.
        min_p: keep tokens whose probability is at least `min_p` times the most likely token's;
            None or 0: no-op.

    Returns:
        [B, V] filtered logits (a new tensor).

    The settings are not checked here (this runs at every decoding step): callers check them once
    with `biolm.inference.arguments.check_sampling`, as `sample_tokens` does.
    """
    if temperature == 0:
        # argmax takes the first of tied tokens, so greedy samples never depend on the uniforms.
        best = logits.argmax(dim=-1, keepdim=True)
        return torch.full_like(logits, NEG_INF).scatter(-1, best, 0.0)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, NEG_INF)
    if top_p is not None and top_p < 1.0:
        sorted_logits, index = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(-1)
        # Drop a token when the tokens ranked above it already reach top_p; the best token always stays.
        drop = (probs.cumsum(-1) - probs) >= top_p
        drop[..., 0] = False  # top_p = 0 would otherwise drop everything
        logits = logits.masked_fill(drop.scatter(-1, index, drop), NEG_INF)
    if min_p is not None and min_p > 0.0:
        # In log space: p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p).
        best = logits.max(dim=-1, keepdim=True).values
        logits = logits.masked_fill(logits < best + float(np.log(min_p)), NEG_INF)
    return logits


def sample_from_logits(logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Draw one token per row by inverting the CDF of softmax(logits) at the given uniforms.

    Each row's draw depends only on its own logits and uniform, not on the other rows: with one seeded
    stream of uniforms per sample, samples do not depend on how they are batched.

    Args:
        logits: [B, V] filtered logits (at least one finite per row); computed in float64 here.
        uniforms: [B] floats in [0, 1).

    Returns:
        [B] int64 token ids, never one of probability 0.
    """
    probs = logits.double().softmax(-1)
    cdf = probs.cumsum(-1)
    total = cdf[:, -1:]
    target = uniforms.to(cdf).unsqueeze(-1) * total
    # u * total can round up to total itself; stay strictly below so a zero-probability tail is unreachable.
    target = torch.minimum(target, torch.nextafter(total, torch.zeros_like(total)))
    # First index whose CDF exceeds the target: a token of positive probability.
    return torch.searchsorted(cdf, target, right=True)[:, 0].clamp_(max=logits.shape[-1] - 1)


class SampleStreams:
    """One seeded stream of uniforms per sample, drawn in blocks (one numpy call per row per block).

    Sample `j` of seed `s` always sees the same uniforms, step by step, whatever batch it is in.
    """

    def __init__(self, seed: int, sample_indices: list[int], block: int = 256) -> None:
        self._rngs = [np.random.default_rng([seed, j]) for j in sample_indices]
        self._block = block
        self._buffer = np.empty((len(sample_indices), 0))
        self._next = 0

    def next(self) -> np.ndarray:
        """[rows] uniforms for the next step, one per sample given at construction (in that order)."""
        if self._next == self._buffer.shape[1]:
            self._buffer = np.stack([rng.random(self._block) for rng in self._rngs])
            self._next = 0
        self._next += 1
        return self._buffer[:, self._next - 1]
