"""Atom-level SMILES tokenizer (regex of Schwaller et al., 2019), with bracket atoms split into parts.

Format 2 (``DEFAULT_VOCAB``): a bracket atom in the vocabulary (``[nH]``, ``[C@@H]``, ``[Na+]``...)
is one token; any other bracket atom is split into parts the vocabulary always holds::

    [131I]     -> [ 1 3 1 I ]
    [CH3:7]    -> [ C H3 : 7 ]
    [Fe@OH1+2] -> [ Fe @OH1 +2 ]

(``[``, isotope digits, element symbol or ``*`` or ``#`` + digits, chirality, H count, charge,
``:`` + class digits, ``]``), and a ``%(nnn)`` ring closure is ``%(``, digits, ``)``. Decoding joins
the tokens, so every SMILES RDKit parses encodes without ``<unk>`` and decodes to the same string.
Format 1 (``V1_VOCAB``, ``bracket_parts=False``) keeps each bracket atom whole, so one outside the
vocabulary is unknown; tokenizers saved in format 1 load with that behaviour and their ids.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from biolm.tokenizers.base import (
    ALIASES_FORMAT_VERSION,
    NUM_SPECIAL,
    UNK_ID,
    TokenizationError,
    Tokenizer,
    TokenizerFormatError,
    check_unknown_mode,
)
from biolm.tokenizers.smiles_vocab import (
    AROMATIC_SYMBOLS,
    CHIRALITY,
    DEFAULT_VOCAB,
    ELEMENTS,
    PART_TOKENS,
    V1_VOCAB,
)

# Bracket contents are printable ASCII without brackets or spaces, so that an unclosed '[' or a
# stray space is reported instead of being swallowed into a token. [0-9] not \d: \d matches
# non-ASCII digits. Two-letter halogens come before single letters so that "Cl" is not "C" + "l".
SMILES_TOKEN_PATTERN_V1 = (
    r"\[[\x21-\x5a\x5c\x5e-\x7e]+\]"
    r"|Br|Cl|@@|%[0-9]{2}"
    r"|[BCNOPSFIbcnosp]"
    r"|[-=#$:/\\().*+@~>0-9]"
)
# Format 2 adds %(nnn) ring closures and the <- dative bond (-> is "-" then ">").
SMILES_TOKEN_PATTERN = (
    r"\[[\x21-\x5a\x5c\x5e-\x7e]+\]"
    r"|Br|Cl|@@|%[0-9]{2}|%\([0-9]+\)|<-"
    r"|[BCNOPSFIbcnosp]"
    r"|[-=#$:/\\().*+@~>0-9]"
)
_TOKEN_RE_V1 = re.compile(SMILES_TOKEN_PATTERN_V1)
_TOKEN_RE = re.compile(SMILES_TOKEN_PATTERN)


def _alternation(options: Iterable[str]) -> str:
    # Longest first, so that "Cl" is not read as "C" + "l" nor "@TB12" as "@TB1" + "2".
    return "|".join(re.escape(o) for o in sorted(set(options), key=lambda o: (-len(o), o)))


# The contents of a bracket atom in RDKit's grammar: isotope, symbol, chirality, H count, charge, class.
_BRACKET_RE = re.compile(
    rf"([0-9]+)?({_alternation(ELEMENTS + AROMATIC_SYMBOLS)}|\*|#[0-9]+)"
    rf"({_alternation(CHIRALITY)})?(H[0-9]*)?(\+\+|--|[+-][0-9]*)?(:[0-9]+)?"
)
_DEFAULT_SET = frozenset(DEFAULT_VOCAB)
_PART_SET = frozenset(PART_TOKENS)


@functools.lru_cache(maxsize=8192)
def _split(token: str) -> tuple[str, ...] | None:
    """The parts of a bracket atom or ``%(nnn)`` ring closure; None if ``token`` is neither."""
    if token.startswith("%("):
        return ("%(", *token[2:-1], ")")
    if not token.startswith("["):
        return None
    m = _BRACKET_RE.fullmatch(token, 1, len(token) - 1)
    if m is None:
        return None
    isotope, symbol, chirality, hcount, charge, atom_class = m.groups()
    parts = ["[", *(isotope or "")]
    parts += ["#", *symbol[1:]] if symbol[0] == "#" else [symbol]
    if chirality:
        parts.append(chirality)
    if hcount:
        parts += [hcount] if len(hcount) <= 2 else ["H", *hcount[1:]]
    if charge:
        parts += [charge] if len(charge) <= 2 else [charge[0], *charge[1:]]
    if atom_class:
        parts += [":", *atom_class[1:]]
    parts.append("]")
    return tuple(parts)


_SYMBOL_SET = frozenset(ELEMENTS + AROMATIC_SYMBOLS)
# How bracket atoms are cut into tokens:
#   "atoms": whole when the vocabulary has the atom, else its parts (`_split`), biolm's own rule;
#   "characters": always '[', then the element symbol whole and every other character alone, then ']'
#                 ([C@@H] -> [ C @ @ H ], [NH3+] -> [ N H 3 + ]), the rule of Chem-xLSTM checkpoints.
SEGMENTATIONS = ("atoms", "characters")


def _characters(tokens: list[str]) -> list[str]:
    """Every bracket atom of ``tokens`` as '[', its symbol, its other characters one by one, ']'."""
    out: list[str] = []
    for t in tokens:
        parts = _split(t) if t.startswith("[") else None
        if parts is None:
            out.append(t)
            continue
        for p in parts:
            out.extend([p] if p in _SYMBOL_SET else p)
    return out


def _expand(tokens: list[str], known: frozenset[str] | Mapping[str, int]) -> list[str]:
    """Replaces each token outside ``known`` by its parts when all of them are known."""
    out: list[str] = []
    for t in tokens:
        if t in known:
            out.append(t)
            continue
        parts = _split(t)
        if parts is not None and all(p in known for p in parts):
            out.extend(parts)
        else:
            out.append(t)  # unknown: reported or replaced as a whole
    return out


def _regex_tokens(smiles: str, regex: re.Pattern[str], record: str | None) -> list[str]:
    tokens = regex.findall(smiles)
    # findall skips what it cannot match, so a length mismatch means a gap somewhere.
    if sum(map(len, tokens)) != len(smiles):
        _raise_first_gap(smiles, regex, record)
    return tokens


def tokenize_smiles(smiles: str, *, record: str | None = None) -> list[str]:
    """Splits a SMILES string into the tokens of ``DEFAULT_VOCAB``; ``"".join(tokens) == smiles``.

    Bracket atoms outside the vocabulary come out as parts (see the module docstring); a bracket
    whose contents are not a bracket atom (``[Qq]``) stays one token, outside the vocabulary.

    Args:
        smiles: The SMILES string.
        record: Record name used in error messages.

    Raises:
        TokenizationError: If part of the string is not a SMILES token (a space, an unknown letter,
            an unclosed bracket...), naming the 1-based position of the first such character.
    """
    tokens = _regex_tokens(smiles, _TOKEN_RE, record)
    if _DEFAULT_SET.issuperset(tokens):
        return tokens
    return _expand(tokens, _DEFAULT_SET)


def _raise_first_gap(smiles: str, regex: re.Pattern[str], record: str | None) -> None:
    pos = 0
    for m in regex.finditer(smiles):
        if m.start() != pos:
            break
        pos = m.end()
    ch = smiles[pos]
    if ch == "[":
        why = "unclosed or malformed bracket atom; '[...]' may not contain spaces or brackets"
    elif ch == "]":
        why = "']' without a matching '['"
    elif ch == "%":
        if regex is _TOKEN_RE_V1:
            why = "'%' ring closure needs exactly two digits"
        else:
            why = "'%' ring closure needs two digits or '%(' digits ')'"
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
    aromatic atoms, bonds, branches, ring closures 0-9 and %10-%99, common bracket atoms, then the
    parts of other bracket atoms). A bracket atom outside the vocabulary is encoded as its parts
    (``[131I]`` -> ``[ 1 3 1 I ]``), so with the default vocabulary only a bracket that is not a
    bracket atom at all (``[Qq]``) or a token of a too-small custom vocabulary is unknown: it raises
    ``TokenizationError`` or, with ``unknown="replace"``, becomes one ``<unk>``. Text that is not
    SMILES at all (spaces, ``X``, an unclosed ``[``) always raises: replacing it would hide corrupt
    input.

    Args:
        vocab: Domain tokens in id order (specials excluded); each must be one SMILES token or part.
        unknown: ``"error"`` or ``"replace"``.
        bracket_parts: ``False`` gives a format-1 tokenizer (default vocabulary ``V1_VOCAB``): bracket
            atoms are never split and ``%(nnn)`` and ``<-`` are not tokens, as in biolm before
            format 2. Tokenizers saved in format 1 load this way, keeping the ids of their models.
        segmentation: how bracket atoms are cut (``SEGMENTATIONS``): ``"atoms"`` (whole when in the
            vocabulary, else parts) or ``"characters"`` (always ``[``, the element symbol, each other
            character, ``]``: the tokens of a converted Chem-xLSTM model).
        aliases: other names of tokens, e.g. a converted model's ``{"[BEG]": "<bos>"}``.
    """

    kind: ClassVar[str] = "smiles"

    def __init__(
        self,
        vocab: Sequence[str] | None = None,
        *,
        unknown: str = "error",
        bracket_parts: bool = True,
        segmentation: str = "atoms",
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self._bracket_parts = bool(bracket_parts)
        if segmentation not in SEGMENTATIONS:
            raise ValueError(f"segmentation must be one of {', '.join(SEGMENTATIONS)}, got {segmentation!r}")
        if segmentation != "atoms" and not self._bracket_parts:
            raise ValueError("segmentation 'characters' cuts bracket atoms: it needs bracket_parts")
        self._segmentation = segmentation
        if vocab is None:
            vocab = DEFAULT_VOCAB if self._bracket_parts else V1_VOCAB
        vocab = list(vocab)
        for t in vocab:
            if not isinstance(t, str) or not self._is_token(t):
                raise ValueError(f"vocabulary entry {t!r} is not a single SMILES token")
        super().__init__(vocab, unknown=unknown, aliases=aliases)
        self._regex = _TOKEN_RE if self._bracket_parts else _TOKEN_RE_V1

    def _is_token(self, t: str) -> bool:
        if not self._bracket_parts:
            return _TOKEN_RE_V1.fullmatch(t) is not None
        # "%(12)" is a regex match but always written as parts.
        return t in _PART_SET or (_TOKEN_RE.fullmatch(t) is not None and not t.startswith("%("))

    @property
    def vocab(self) -> list[str]:
        """Domain tokens (without specials) in id order."""
        return list(self._tokens[NUM_SPECIAL:])

    @property
    def bracket_parts(self) -> bool:
        """Whether bracket atoms outside the vocabulary are split into parts (format 2)."""
        return self._bracket_parts

    @property
    def segmentation(self) -> str:
        """How bracket atoms are cut into tokens (``SEGMENTATIONS``)."""
        return self._segmentation

    def tokenize(self, smiles: str, *, record: str | None = None) -> list[str]:
        """The tokens ``encode`` maps to ids; ``"".join(tokens) == smiles`` always holds.

        With ``bracket_parts`` a token outside the vocabulary is replaced by its parts when the
        vocabulary has them all; what is left outside the vocabulary is unknown to ``encode``.

        Raises:
            TokenizationError: As ``tokenize_smiles``, for text that is not SMILES tokens.
        """
        tokens = _regex_tokens(smiles, self._regex, record)
        if not self._bracket_parts:
            return tokens
        if self._segmentation == "characters":
            return _characters(tokens)
        return _expand(tokens, self._index)

    def encode(
        self, seq: str, *, record: str | None = None, add_bos: bool = False, add_eos: bool = False
    ) -> np.ndarray:
        tokens = _regex_tokens(seq, self._regex, record)
        if self._segmentation == "characters":
            tokens = _characters(tokens)
        index = self._index
        try:
            ids = [index[t] for t in tokens]
        except KeyError:
            if self._bracket_parts:
                tokens = _expand(tokens, index)
            if all(t in index for t in tokens):
                ids = [index[t] for t in tokens]
            else:
                ids = self._encode_with_unknowns(tokens, record)
        return self._add_specials(np.array(ids, dtype=np.int64), add_bos, add_eos)

    def _encode_with_unknowns(self, tokens: list[str], record: str | None) -> list[int]:
        index = self._index
        if self._unknown == "replace":
            return [index.get(t, UNK_ID) for t in tokens]
        pos = 0
        for t in tokens:
            if t not in index:
                if not self._bracket_parts or _split(t) is None:
                    hint = "not in the vocabulary"
                    if self._bracket_parts and t.startswith("["):
                        hint += " and not a bracket atom ([isotope]symbol[chirality][Hn][charge][:class])"
                else:
                    hint = "neither it nor all of its parts are in the vocabulary"
                raise TokenizationError(
                    f"unknown SMILES token {t!r} at position {pos + 1} ({hint})",
                    record=record,
                    position=pos + 1,
                    text=t,
                    hint="pass unknown='replace' to map it to <unk>, or build one with SmilesTokenizer.fit",
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
        ids of ``base`` tokens are unchanged (a model trained with ``base`` stays valid). Bracket
        atoms are split into parts as ``encode`` does, so what is added is the parts ``base``
        lacks, or whole brackets that are not bracket atoms. The result has ``bracket_parts``
        (format 2) even when ``base`` is a format-1 tokenizer.

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
            tokens = _regex_tokens(s, _TOKEN_RE, f"#{i}")
            for t in tokens:
                if t in known:
                    continue
                parts = _split(t)
                new.update([t] if parts is None else [p for p in parts if p not in known])
        return cls(base_vocab + sorted(new), unknown=unknown)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if self._segmentation != "atoms":
            d["format_version"] = ALIASES_FORMAT_VERSION
            d["segmentation"] = self._segmentation
        if d["format_version"] >= ALIASES_FORMAT_VERSION:
            d["bracket_parts"] = self._bracket_parts  # format 3 says it, whatever its other options
        elif not self._bracket_parts:
            d["format_version"] = 1  # read back as format 1, with the same ids
        return d

    @classmethod
    def _from_dict(
        cls, d: Mapping[str, Any], domain_tokens: list[str], unknown: str, source: str | None
    ) -> Tokenizer:
        segmentation = d.get("segmentation", "atoms")
        bracket_parts = d.get("bracket_parts", d["format_version"] >= 2)
        if not isinstance(segmentation, str) or not isinstance(bracket_parts, bool):
            where = f"{source}: " if source else ""
            raise TokenizerFormatError(
                f"{where}'segmentation' must be a string and 'bracket_parts' a boolean"
            )
        try:
            return cls(domain_tokens, unknown=unknown, bracket_parts=bracket_parts, segmentation=segmentation)
        except ValueError as e:
            where = f"{source}: " if source else ""
            raise TokenizerFormatError(f"{where}invalid SMILES vocabulary: {e}") from e

    def __eq__(self, other: object) -> bool:
        result = super().__eq__(other)
        if result is True:
            return (self._bracket_parts, self._segmentation) == (
                other._bracket_parts,  # type: ignore[attr-defined]
                other._segmentation,  # type: ignore[attr-defined]
            )
        return result

    def __hash__(self) -> int:
        return hash((super().__hash__(), self._bracket_parts, self._segmentation))

    def __repr__(self) -> str:
        extra = "" if self._bracket_parts else ", bracket_parts=False"
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, unknown={self._unknown!r}{extra})"
