"""Protein tokenizer: one token per amino acid, plus optional fill-in-the-middle sentinels."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from biolm.tokenizers.base import NUM_SPECIAL, CharTokenizer, Tokenizer, TokenizerFormatError, _where

STANDARD_AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
# X unknown, B Asx (D/N), Z Glx (E/Q), U selenocysteine, O pyrrolysine: all occur in UniProt.
EXTRA_AMINO_ACIDS = "XBZUO"
_SENTINEL_RE = re.compile(r"<fim_([1-9][0-9]*)>")


def sentinel_token(k: int) -> str:
    """The text of the k-th fill-in-the-middle sentinel (1-based), e.g. ``<fim_1>``."""
    return f"<fim_{k}>"


class ProteinTokenizer(CharTokenizer):
    """Amino-acid tokenizer.

    Vocabulary: the six specials (ids 0-5), the 20 standard amino acids ``ACDEFGHIKLMNPQRSTVWY``
    (ids 6-25), then ``X B Z U O`` (ids 26-30); ``vocab_size`` is 31. Input is case-insensitive;
    anything else (``*``, gaps, digits, whitespace, non-ASCII) raises ``TokenizationError`` unless
    ``unknown="replace"``, which maps it to ``X``.

    With ``fim_sentinels=n`` the sentinels ``<fim_1> .. <fim_n>`` follow as ids 31 .. 30 + n, one per
    span of multi-span fill-in-the-middle. They come after the alphabet so that every other id is the
    same with or without them (a tokenizer file without sentinels reads back unchanged); they are never
    produced by `encode` and count as special tokens (dropped by `decode`, banned when sampling).

    Args:
        unknown: ``"error"`` or ``"replace"``.
        fim_sentinels: number of sentinel tokens to add (0: none).
    """

    kind: ClassVar[str] = "protein"
    ALPHABET: ClassVar[str] = STANDARD_AMINO_ACIDS + EXTRA_AMINO_ACIDS
    REPLACEMENT: ClassVar[str] = "X"
    ALPHABET_NAME: ClassVar[str] = f"protein alphabet is {STANDARD_AMINO_ACIDS}{EXTRA_AMINO_ACIDS}"

    def __init__(self, *, unknown: str = "error", fim_sentinels: int = 0) -> None:
        super().__init__(unknown=unknown)
        if fim_sentinels < 0:
            raise ValueError(f"fim_sentinels must be >= 0, got {fim_sentinels}")
        self._first_sentinel = len(self._tokens)
        if fim_sentinels:
            self._tokens = self._tokens + tuple(sentinel_token(k) for k in range(1, fim_sentinels + 1))
            self._index = {t: i for i, t in enumerate(self._tokens)}
            self._decode_bytes = np.concatenate([self._decode_bytes, np.zeros(fim_sentinels, np.uint8)])

    @property
    def fim_sentinels(self) -> int:
        """How many ``<fim_k>`` sentinels the vocabulary has."""
        return len(self._tokens) - self._first_sentinel

    @property
    def sentinel_ids(self) -> list[int]:
        """Ids of ``<fim_1> .. <fim_n>`` in order."""
        return list(range(self._first_sentinel, len(self._tokens)))

    @property
    def special_ids(self) -> list[int]:
        return list(range(NUM_SPECIAL)) + self.sentinel_ids

    def decode(self, ids: Any, *, skip_special: bool = True) -> str:
        if skip_special and self.fim_sentinels:
            arr = self._checked_ids(ids)
            return super().decode(arr[arr < self._first_sentinel], skip_special=True)
        return super().decode(ids, skip_special=skip_special)

    @classmethod
    def _from_dict(
        cls, d: Mapping[str, Any], domain_tokens: list[str], unknown: str, source: str | None
    ) -> Tokenizer:
        n_alpha = len(cls.ALPHABET)
        extra = domain_tokens[n_alpha:]
        expected = [sentinel_token(k) for k in range(1, len(extra) + 1)]
        if extra != expected or not all(_SENTINEL_RE.fullmatch(t) for t in extra):
            raise TokenizerFormatError(
                f"{_where(source)}protein tokens after the alphabet must be {expected}, got {extra}"
            )
        super()._from_dict(d, domain_tokens[:n_alpha], unknown, source)  # checks the alphabet
        return cls(unknown=unknown, fim_sentinels=len(extra))
