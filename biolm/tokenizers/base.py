"""Shared tokenizer machinery: special tokens, errors, JSON (de)serialisation, byte lookup tables.

Every tokenizer puts the same six special tokens first, so that models, collators and samplers can use
fixed ids (``<pad>`` = 0 ... ``<unk>`` = 5) whatever the domain.
"""

from __future__ import annotations

import json
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from biolm.errors import InputError
from biolm.io.files import write_text_atomic

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<sep>", "<mask>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, SEP_ID, MASK_ID, UNK_ID = range(len(SPECIAL_TOKENS))
NUM_SPECIAL = len(SPECIAL_TOKENS)

FORMAT_NAME = "biolm-tokenizer"
# 2: SMILES bracket atoms outside the vocabulary are split into parts; DNA and protein read 1 and 2 alike.
FORMAT_VERSION = 2
# Format 3 adds token aliases (and the SMILES tokenizer's segmentation); a tokenizer without them is
# still written as format 2, so that an older biolm reads it.
ALIASES_FORMAT_VERSION = 3
SUPPORTED_FORMAT_VERSIONS: tuple[int, ...] = (1, 2, 3)
UNKNOWN_MODES: tuple[str, ...] = ("error", "replace")


class TokenizationError(InputError):
    """Input text contains something the tokenizer cannot encode.

    Attributes:
        record: Name of the record (FASTA id, row number...) or ``None``.
        position: 1-based character position of the offending character or token.
        text: The offending character or token.
        reason: The message without the hint: what a caller that reads the text some other way (a CLI
            command, a training run with its own ``data.unknown`` key) prints with its own hint.
        hint: How a caller of the tokenizer gets past it (``unknown='replace'``), or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        record: str | None = None,
        position: int | None = None,
        text: str | None = None,
        hint: str | None = None,
    ) -> None:
        # The fields default to None so that the error can be rebuilt from its message alone, as
        # torch's DataLoader does when re-raising a worker's exception.
        prefix = f"record {record!r}: " if record is not None else ""
        self.reason = prefix + message
        super().__init__(self.reason + (f"; {hint}" if hint else ""))
        self.record = record
        self.position = position
        self.text = text
        self.hint = hint

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self),), dict(self.__dict__))


class TokenizerFormatError(InputError):
    """A serialised tokenizer is malformed or written in an unsupported format version."""


def check_unknown_mode(unknown: str) -> str:
    """Validates the ``unknown`` constructor option.

    Raises:
        ValueError: If ``unknown`` is not one of ``UNKNOWN_MODES``.
    """
    if unknown not in UNKNOWN_MODES:
        raise ValueError(f"unknown must be one of {UNKNOWN_MODES}, got {unknown!r}")
    return unknown


def as_id_array(ids: Any) -> np.ndarray:
    """Converts a list, numpy array or (any-device) torch tensor of ids to a 1-D int64 array."""
    if hasattr(ids, "detach"):  # torch tensor; duck-typed so that torch is not imported here
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"decode expects a 1-D sequence of ids, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"decode expects integer ids, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def is_torch_tensor(x: Any) -> bool:
    """True if ``x`` is a torch tensor, without importing torch when the caller has not."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


class Tokenizer(ABC):
    """Base class: a vocabulary whose first ids are ``SPECIAL_TOKENS``, followed by domain tokens.

    Subclasses set ``kind`` and implement ``encode`` and ``_from_dict``.
    """

    kind: ClassVar[str]

    def __init__(
        self,
        domain_tokens: Sequence[str],
        *,
        unknown: str = "error",
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self._unknown = check_unknown_mode(unknown)
        self._tokens: tuple[str, ...] = SPECIAL_TOKENS + tuple(domain_tokens)
        self._index: dict[str, int] = {t: i for i, t in enumerate(self._tokens)}
        if len(self._index) != len(self._tokens):
            dupes = sorted({t for t in self._tokens if self._tokens.count(t) > 1})
            raise ValueError(f"duplicate tokens in vocabulary: {dupes}")
        self._aliases: dict[str, str] = {}
        self.set_aliases(aliases or {})

    # --- vocabulary -----------------------------------------------------------------------------

    @property
    def tokens(self) -> list[str]:
        """All tokens; the list index is the token id."""
        return list(self._tokens)

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    @property
    def unknown(self) -> str:
        """How characters outside the vocabulary are handled: ``"error"`` or ``"replace"``."""
        return self._unknown

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def bos_id(self) -> int:
        return BOS_ID

    @property
    def eos_id(self) -> int:
        return EOS_ID

    @property
    def sep_id(self) -> int:
        return SEP_ID

    @property
    def mask_id(self) -> int:
        return MASK_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    @property
    def special_ids(self) -> list[int]:
        return list(range(NUM_SPECIAL))

    @property
    def aliases(self) -> dict[str, str]:
        """Other names of tokens (a converted model's own names, e.g. ``[BEG]`` for ``<bos>``)."""
        return dict(self._aliases)

    def token_to_id(self, token: str) -> int:
        """Id of ``token`` (or of the token an alias names).

        Raises:
            KeyError: If the token is not in the vocabulary.
        """
        return self._index[self._aliases.get(token, token)]

    # --- encoding -------------------------------------------------------------------------------

    @abstractmethod
    def encode(
        self, seq: str, *, record: str | None = None, add_bos: bool = False, add_eos: bool = False
    ) -> np.ndarray:
        """Encodes one sequence.

        Args:
            seq: The sequence text.
            record: Record name used in error messages.
            add_bos: Prepend ``<bos>``.
            add_eos: Append ``<eos>``.

        Returns:
            int64 array of shape ``[L]`` (``L`` includes BOS/EOS when added).

        Raises:
            TokenizationError: On input the tokenizer cannot encode (see ``unknown``).
        """

    def decode(self, ids: Any, *, skip_special: bool = True) -> str:
        """Turns ids back into text.

        Args:
            ids: 1-D list, numpy array or torch tensor of ids.
            skip_special: Drop special tokens instead of writing them as ``<pad>`` etc.

        Raises:
            ValueError: If an id is outside ``[0, vocab_size)`` or ``ids`` is not 1-D.
        """
        # Plain Python beats numpy here: decoded sequences are short (SMILES) and end as a join anyway.
        id_list = as_id_array(ids).tolist()
        if id_list and (min(id_list) < 0 or max(id_list) >= len(self._tokens)):
            self._checked_ids(id_list)
        tokens = self._tokens
        if skip_special:
            return "".join([tokens[i] for i in id_list if i >= NUM_SPECIAL])
        return "".join([tokens[i] for i in id_list])

    def _checked_ids(self, ids: Any) -> np.ndarray:
        """Returns ``ids`` as an int64 array; raises ValueError naming the first out-of-range id."""
        arr = as_id_array(ids)
        bad = np.flatnonzero((arr < 0) | (arr >= len(self._tokens)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"id {int(arr[i])} at index {i} is outside the vocabulary (size {self.vocab_size})"
            )
        return arr

    @staticmethod
    def _add_specials(ids: np.ndarray, add_bos: bool, add_eos: bool) -> np.ndarray:
        if not (add_bos or add_eos):
            return ids
        parts = [np.array([BOS_ID], np.int64)] if add_bos else []
        parts.append(ids)
        if add_eos:
            parts.append(np.array([EOS_ID], np.int64))
        return np.concatenate(parts)

    # --- serialisation --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible description; ``tokenizer_from_dict`` inverts it."""
        d = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "unknown": self._unknown,
            "tokens": list(self._tokens),
        }
        if self._aliases:
            d["format_version"] = ALIASES_FORMAT_VERSION
            d["aliases"] = dict(self._aliases)
        return d

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the tokenizer as JSON; atomic, so an interrupted save never leaves a partial file."""
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str | None = None) -> Tokenizer:
        """Rebuilds a tokenizer of this class from ``to_dict`` output.

        Raises:
            TokenizerFormatError: If the dict is not a valid serialisation of this kind.
        """
        check_header(d, source=source, kind=cls.kind)
        tokens = d.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise TokenizerFormatError(f"{_where(source)}'tokens' must be a list of strings")
        if tuple(tokens[:NUM_SPECIAL]) != SPECIAL_TOKENS:
            raise TokenizerFormatError(
                f"{_where(source)}the first tokens must be {list(SPECIAL_TOKENS)}, got {tokens[:NUM_SPECIAL]}"
            )
        unknown = d.get("unknown", "error")
        if unknown not in UNKNOWN_MODES:
            raise TokenizerFormatError(
                f"{_where(source)}'unknown' must be one of {UNKNOWN_MODES}, got {unknown!r}"
            )
        aliases = d.get("aliases", {})
        if not isinstance(aliases, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
        ):
            raise TokenizerFormatError(f"{_where(source)}'aliases' must map strings to strings")
        tokenizer = cls._from_dict(d, tokens[NUM_SPECIAL:], unknown, source)
        if aliases:
            try:
                tokenizer.set_aliases(aliases)
            except ValueError as e:
                raise TokenizerFormatError(f"{_where(source)}{e}") from None
        return tokenizer

    def set_aliases(self, aliases: Mapping[str, str]) -> None:
        """Give tokens other names (replacing earlier aliases), e.g. a converted model's `[BEG]` for
        `<bos>`; `token_to_id` then answers them.

        Raises:
            ValueError: an alias that is itself a token, or that names no token of the vocabulary.
        """
        for name, token in aliases.items():
            if name in self._index or token not in self._index:
                raise ValueError(
                    f"alias {name!r} -> {token!r}: an alias names a token of the vocabulary and is not one"
                )
        self._aliases = dict(aliases)

    @classmethod
    @abstractmethod
    def _from_dict(
        cls, d: Mapping[str, Any], domain_tokens: list[str], unknown: str, source: str | None
    ) -> Tokenizer: ...

    # --- comparison -----------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return (
            self._tokens == other._tokens
            and self._unknown == other._unknown
            and self._aliases == other._aliases
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._tokens, self._unknown, tuple(sorted(self._aliases.items()))))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, unknown={self._unknown!r})"


def _where(source: str | None) -> str:
    return f"{source}: " if source else ""


def check_header(d: Any, *, source: str | None, kind: str | None = None) -> str:
    """Validates the format/version/kind fields of a serialised tokenizer and returns its kind.

    Raises:
        TokenizerFormatError: Naming ``source`` and the offending field.
    """
    if not isinstance(d, Mapping):
        raise TokenizerFormatError(f"{_where(source)}expected a JSON object, got {type(d).__name__}")
    if d.get("format") != FORMAT_NAME:
        raise TokenizerFormatError(f"{_where(source)}not a biolm tokenizer (format={d.get('format')!r})")
    version = d.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS or isinstance(version, bool):
        raise TokenizerFormatError(
            f"{_where(source)}unsupported tokenizer format_version {version!r} "
            f"(this biolm reads {', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))})"
        )
    found = d.get("kind")
    if not isinstance(found, str):  # a list or a mapping would fail as a dict key, not as a bad file
        raise TokenizerFormatError(f"{_where(source)}'kind' must be a string, got {found!r}")
    if kind is not None and found != kind:
        raise TokenizerFormatError(f"{_where(source)}expected kind {kind!r}, got {found!r}")
    return found


class CharTokenizer(Tokenizer):
    """One token per character, encoded through a 256-entry byte lookup table.

    Subclasses set ``ALPHABET`` (single-character domain tokens), ``ALIASES`` (extra characters
    mapped onto an alphabet token), ``REPLACEMENT`` (the token for unknown characters under
    ``unknown="replace"``) and ``ALPHABET_NAME`` / ``VALID_HINT`` for error messages.
    Input is case-insensitive.
    """

    ALPHABET: ClassVar[str]
    ALIASES: ClassVar[Mapping[str, str]] = {}
    REPLACEMENT: ClassVar[str]
    ALPHABET_NAME: ClassVar[str]

    def __init__(self, *, unknown: str = "error") -> None:
        super().__init__(tuple(self.ALPHABET), unknown=unknown)
        strict = np.full(256, -1, dtype=np.int64)
        for ch in self.ALPHABET:
            strict[ord(ch)] = strict[ord(ch.lower())] = self._index[ch]
        for alias, target in self.ALIASES.items():
            strict[ord(alias)] = strict[ord(alias.lower())] = self._index[target]
        self._strict_lut = strict
        self._lut = strict.copy()
        if unknown == "replace":
            self._lut[self._lut < 0] = self._index[self.REPLACEMENT]
        # Domain ids decode to one byte each, which lets decode() avoid a Python loop on long inputs.
        self._decode_bytes = np.zeros(len(self._tokens), dtype=np.uint8)
        for ch in self.ALPHABET:
            self._decode_bytes[self._index[ch]] = ord(ch)

    def encode(
        self, seq: str, *, record: str | None = None, add_bos: bool = False, add_eos: bool = False
    ) -> np.ndarray:
        # errors="replace" turns each non-ASCII character into exactly one '?', so byte offsets stay
        # equal to character offsets and '?' (never valid) is reported or replaced like any other.
        raw = np.frombuffer(seq.encode("ascii", errors="replace"), dtype=np.uint8)
        ids = self._lut[raw]
        if self._unknown == "error" and ids.size:
            bad = np.flatnonzero(ids < 0)
            if bad.size:
                pos = int(bad[0])
                ch = seq[pos]
                raise TokenizationError(
                    f"invalid character {ch!r} at position {pos + 1} ({self.ALPHABET_NAME})",
                    record=record,
                    position=pos + 1,
                    text=ch,
                    hint=f"pass unknown='replace' to map it to {self.REPLACEMENT}",
                )
        return self._add_specials(ids, add_bos, add_eos)

    def decode(self, ids: Any, *, skip_special: bool = True) -> str:
        arr = self._checked_ids(ids)
        if skip_special:
            return self._decode_bytes[arr[arr >= NUM_SPECIAL]].tobytes().decode("ascii")
        return super().decode(arr, skip_special=False)

    @classmethod
    def _from_dict(
        cls, d: Mapping[str, Any], domain_tokens: list[str], unknown: str, source: str | None
    ) -> Tokenizer:
        if domain_tokens != list(cls.ALPHABET):
            raise TokenizerFormatError(
                f"{_where(source)}{cls.kind} tokens {domain_tokens} differ from this biolm's "
                f"{list(cls.ALPHABET)}; the file was written by an incompatible version"
            )
        return cls(unknown=unknown)
