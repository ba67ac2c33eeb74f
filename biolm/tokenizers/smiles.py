"""Atom-level SMILES tokenizer (regex of Schwaller et al., 2019)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from biolm.tokenizers.base import (
    NUM_SPECIAL,
    UNK_ID,
    TokenizationError,
    Tokenizer,
    TokenizerFormatError,
    check_unknown_mode,
)
from biolm.tokenizers.smiles_vocab import DEFAULT_VOCAB

# Bracket contents are printable ASCII without brackets or spaces, so that an unclosed '[' or a
# stray space is reported instead of being swallowed into a token. [0-9] not \d: \d matches
# non-ASCII digits. Two-letter halogens come before single letters so that "Cl" is not "C" + "l".
SMILES_TOKEN_PATTERN = (
    r"\[[\x21-\x5a\x5c\x5e-\x7e]+\]"
    r"|Br|Cl|@@|%[0-9]{2}"
    r"|[BCNOPSFIbcnosp]"
    r"|[-=#$:/\\().*+@~>0-9]"
)
_TOKEN_RE = re.compile(SMILES_TOKEN_PATTERN)


def tokenize_smiles(smiles: str, *, record: str | None = None) -> list[str]:
    """Splits a SMILES string into atom-level tokens; ``"".join(tokens) == smiles`` always holds.

    Args:
        smiles: The SMILES string.
        record: Record name used in error messages.

    Raises:
        TokenizationError: If part of the string is not a SMILES token (a space, an unknown letter,
            an unclosed bracket...), naming the 1-based position of the first such character.
    """
    tokens = _TOKEN_RE.findall(smiles)
    # findall skips what it cannot match, so a length mismatch means a gap somewhere.
    if sum(map(len, tokens)) != len(smiles):
        _raise_first_gap(smiles, record)
    return tokens


def _raise_first_gap(smiles: str, record: str | None) -> None:
    pos = 0
    for m in _TOKEN_RE.finditer(smiles):
        if m.start() != pos:
            break
        pos = m.end()
    ch = smiles[pos]
    if ch == "[":
        why = "unclosed or malformed bracket atom; '[...]' may not contain spaces or brackets"
    elif ch == "]":
        why = "']' without a matching '['"
    elif ch == "%":
        why = "'%' ring closure needs exactly two digits"
    else:
        why = "not part of any SMILES token"
    raise TokenizationError(
        f"invalid character {ch!r} at position {pos + 1} in SMILES ({why})",
        record=record,
        position=pos + 1,
        text=ch,
    )


class SmilesTokenizer(Tokenizer):
    """SMILES tokenizer over a fixed vocabulary of atom-level tokens.

    Vocabulary: the six specials (ids 0-5) then ``vocab`` (default ``DEFAULT_VOCAB``: organic and
    aromatic atoms, bonds, branches, ring closures 0-9 and %10-%99, and common bracket atoms).
    A regex token outside the vocabulary (e.g. ``[Xe+3]``) raises ``TokenizationError`` or, with
    ``unknown="replace"``, becomes ``<unk>``. Text that is not SMILES at all (spaces, ``X``, an
    unclosed ``[``) always raises: replacing it would hide corrupt input.

    Args:
        vocab: Domain tokens in id order (specials excluded); each must be one SMILES token.
        unknown: ``"error"`` or ``"replace"``.
    """

    kind: ClassVar[str] = "smiles"

    def __init__(self, vocab: Sequence[str] | None = None, *, unknown: str = "error") -> None:
        vocab = list(DEFAULT_VOCAB if vocab is None else vocab)
        for t in vocab:
            if not isinstance(t, str) or not _TOKEN_RE.fullmatch(t):
                raise ValueError(f"vocabulary entry {t!r} is not a single SMILES token")
        super().__init__(vocab, unknown=unknown)

    @property
    def vocab(self) -> list[str]:
        """Domain tokens (without specials) in id order."""
        return list(self._tokens[NUM_SPECIAL:])

    def tokenize(self, smiles: str, *, record: str | None = None) -> list[str]:
        """See ``tokenize_smiles``."""
        return tokenize_smiles(smiles, record=record)

    def encode(
        self, seq: str, *, record: str | None = None, add_bos: bool = False, add_eos: bool = False
    ) -> np.ndarray:
        tokens = tokenize_smiles(seq, record=record)
        index = self._index
        try:
            ids = [index[t] for t in tokens]
        except KeyError:
            ids = self._encode_with_unknowns(tokens, record)
        return self._add_specials(np.array(ids, dtype=np.int64), add_bos, add_eos)

    def _encode_with_unknowns(self, tokens: list[str], record: str | None) -> list[int]:
        index = self._index
        if self._unknown == "replace":
            return [index.get(t, UNK_ID) for t in tokens]
        pos = 0
        for t in tokens:
            if t not in index:
                raise TokenizationError(
                    f"unknown SMILES token {t!r} at position {pos + 1} (not in the vocabulary; pass "
                    "unknown='replace' to map it to <unk>, or build one with SmilesTokenizer.fit)",
                    record=record,
                    position=pos + 1,
                    text=t,
                )
            pos += len(t)
        raise AssertionError("unreachable: a token was missing from the vocabulary")

    @classmethod
    def fit(
        cls,
        smiles: Iterable[str],
        *,
        base: SmilesTokenizer | Sequence[str] | None = None,
        unknown: str | None = None,
    ) -> SmilesTokenizer:
        """Builds a tokenizer whose vocabulary extends ``base`` with every new token in ``smiles``.

        New tokens are appended in sorted order, so the result does not depend on input order and
        ids of ``base`` tokens are unchanged (a model trained with ``base`` stays valid).

        Args:
            smiles: SMILES strings to scan.
            base: Tokenizer or vocabulary to extend; ``None`` means ``DEFAULT_VOCAB``.
            unknown: Option for the new tokenizer; ``None`` keeps ``base``'s (or ``"error"``).

        Raises:
            TokenizationError: If a string is not tokenizable; the record is its 0-based index.
        """
        if isinstance(base, SmilesTokenizer):
            base_vocab = base.vocab
            unknown = base.unknown if unknown is None else unknown
        else:
            base_vocab = list(DEFAULT_VOCAB if base is None else base)
        unknown = check_unknown_mode("error" if unknown is None else unknown)
        known = set(base_vocab)
        new: set[str] = set()
        for i, s in enumerate(smiles):
            new.update(t for t in tokenize_smiles(s, record=f"#{i}") if t not in known)
        return cls(base_vocab + sorted(new), unknown=unknown)

    @classmethod
    def _from_dict(
        cls, d: Mapping[str, Any], domain_tokens: list[str], unknown: str, source: str | None
    ) -> Tokenizer:
        try:
            return cls(domain_tokens, unknown=unknown)
        except ValueError as e:
            where = f"{source}: " if source else ""
            raise TokenizerFormatError(f"{where}invalid SMILES vocabulary: {e}") from e
