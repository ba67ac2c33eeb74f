"""Order-k Markov model of DNA: the baseline a DNA language model has to beat.

Bases are coded 0..3 (A, C, G, T); any other code (N, specials) is -1 and neither counted as a
context nor as a target.
"""

from __future__ import annotations

import numpy as np


class MarkovModel:
    """Counts of (k-mer context, next base) with add-one smoothing."""

    def __init__(self, order: int) -> None:
        if order < 0:
            raise ValueError(f"Markov order must be >= 0, got {order}")
        self.order = order
        self.counts = np.zeros((4**order, 4), dtype=np.int64)
        self.unigram = np.zeros(4, dtype=np.int64)

    def _contexts(self, bases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Context code and validity for each position j >= order of `bases` (coded 0..3 or -1)."""
        k, n = self.order, len(bases) - self.order
        code = np.zeros(n, dtype=np.int64)
        valid = np.ones(n, dtype=bool)
        for j in range(k):
            window = bases[j : j + n]
            code = code * 4 + np.maximum(window, 0)
            valid &= window >= 0
        return code, valid

    def update(self, bases: np.ndarray) -> None:
        """Add the transitions inside one contiguous stretch of bases (no transition crosses stretches)."""
        bases = np.asarray(bases, dtype=np.int64)
        self.unigram += np.bincount(bases[bases >= 0], minlength=4)
        if len(bases) <= self.order:
            return
        code, valid = self._contexts(bases)
        target = bases[self.order :]
        keep = valid & (target >= 0)
        flat = np.bincount(code[keep] * 4 + target[keep], minlength=self.counts.size)
        self.counts += flat.reshape(self.counts.shape)

    def log_probs(self) -> np.ndarray:
        smoothed = self.counts + 1.0
        return np.log(smoothed / smoothed.sum(axis=1, keepdims=True))

    def nll(self, bases: np.ndarray, first_target: int = 0) -> tuple[float, int]:
        """Summed negative log-likelihood (nats) and count of the targets `bases[first_target:]`.

        `bases[:first_target]` is context only. A target whose full context is not available (too
        close to the start, or containing N) is scored with the unigram distribution.
        """
        bases = np.asarray(bases, dtype=np.int64)
        unigram = np.log((self.unigram + 1.0) / (self.unigram.sum() + 4.0))
        log_p = self.log_probs()
        scores = np.full(len(bases), np.nan)
        scores[bases >= 0] = unigram[bases[bases >= 0]]
        if len(bases) > self.order:
            code, valid = self._contexts(bases)
            target = bases[self.order :]
            ok = valid & (target >= 0)
            scores[self.order :][ok] = log_p[code[ok], target[ok]]
        scored = scores[first_target:]
        scored = scored[~np.isnan(scored)]
        return float(-scored.sum()), int(scored.size)
