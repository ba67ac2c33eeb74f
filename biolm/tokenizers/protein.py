"""Protein tokenizer: one token per amino acid."""

from __future__ import annotations

from typing import ClassVar

from biolm.tokenizers.base import CharTokenizer

STANDARD_AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
# X unknown, B Asx (D/N), Z Glx (E/Q), U selenocysteine, O pyrrolysine: all occur in UniProt.
EXTRA_AMINO_ACIDS = "XBZUO"


class ProteinTokenizer(CharTokenizer):
    """Amino-acid tokenizer.

    Vocabulary: the six specials (ids 0-5), the 20 standard amino acids ``ACDEFGHIKLMNPQRSTVWY``
    (ids 6-25), then ``X B Z U O`` (ids 26-30); ``vocab_size`` is 31. Input is case-insensitive;
    anything else (``*``, gaps, digits, whitespace, non-ASCII) raises ``TokenizationError`` unless
    ``unknown="replace"``, which maps it to ``X``.

    Args:
        unknown: ``"error"`` or ``"replace"``.
    """

    kind: ClassVar[str] = "protein"
    ALPHABET: ClassVar[str] = STANDARD_AMINO_ACIDS + EXTRA_AMINO_ACIDS
    REPLACEMENT: ClassVar[str] = "X"
    ALPHABET_NAME: ClassVar[str] = f"protein alphabet is {STANDARD_AMINO_ACIDS}{EXTRA_AMINO_ACIDS}"
