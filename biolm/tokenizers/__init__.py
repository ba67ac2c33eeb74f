"""Tokenizers for DNA, proteins and SMILES with shared special-token ids and a JSON format.

>>> tok = get_tokenizer("dna")
>>> tok.decode(tok.encode("acgtn"))
'ACGTN'
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from biolm.io.files import read_bounded
from biolm.tokenizers.base import (
    BOS_ID,
    EOS_ID,
    FORMAT_VERSION,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    TokenizationError,
    Tokenizer,
    TokenizerFormatError,
    check_header,
)
from biolm.tokenizers.dna import DNATokenizer
from biolm.tokenizers.protein import ProteinTokenizer
from biolm.tokenizers.smiles import SmilesTokenizer, tokenize_smiles

# A tokenizer file is a few kilobytes (the largest vocabulary, SMILES, has a few hundred tokens). It is
# read whole, so it is bounded: 64 MiB is room for any vocabulary, and keeps /dev/zero or a huge file out
# of memory.
MAX_TOKENIZER_BYTES = 64 << 20

TOKENIZER_CLASSES: dict[str, type[Tokenizer]] = {
    "dna": DNATokenizer,
    "protein": ProteinTokenizer,
    "smiles": SmilesTokenizer,
}

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "FORMAT_VERSION",
    "MASK_ID",
    "MAX_TOKENIZER_BYTES",
    "PAD_ID",
    "SEP_ID",
    "SPECIAL_TOKENS",
    "TOKENIZER_CLASSES",
    "UNK_ID",
    "DNATokenizer",
    "ProteinTokenizer",
    "SmilesTokenizer",
    "TokenizationError",
    "Tokenizer",
    "TokenizerFormatError",
    "get_tokenizer",
    "load_tokenizer",
    "tokenize_smiles",
    "tokenizer_from_dict",
]


def get_tokenizer(kind: str, **kwargs: Any) -> Tokenizer:
    """Builds a tokenizer by kind name.

    Args:
        kind: ``"dna"``, ``"protein"`` or ``"smiles"``.
        **kwargs: Passed to the tokenizer's constructor (e.g. ``unknown="replace"``).

    Raises:
        ValueError: If ``kind`` is not known.
    """
    try:
        cls = TOKENIZER_CLASSES[kind]
    except KeyError:
        known = sorted(TOKENIZER_CLASSES)
        raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {known}") from None
    return cls(**kwargs)


def tokenizer_from_dict(d: Mapping[str, Any], *, source: str | None = None) -> Tokenizer:
    """Rebuilds a tokenizer from ``Tokenizer.to_dict`` output.

    Args:
        d: The serialised tokenizer.
        source: Where ``d`` came from (a file name), used in error messages.

    Raises:
        TokenizerFormatError: If ``d`` is malformed, of an unknown kind or an unsupported version.
    """
    kind = check_header(d, source=source)
    if kind not in TOKENIZER_CLASSES:
        where = f"{source}: " if source else ""
        raise TokenizerFormatError(
            f"{where}unknown tokenizer kind {kind!r}; expected one of {sorted(TOKENIZER_CLASSES)}"
        )
    return TOKENIZER_CLASSES[kind].from_dict(d, source=source)


def load_tokenizer(path: str | os.PathLike[str]) -> Tokenizer:
    """Loads a tokenizer written by ``Tokenizer.save``.

    Raises:
        TokenizerFormatError: If the file is not UTF-8 JSON or not a supported tokenizer file; the
            message names the file.
        InputError: If the file cannot be read (missing, a directory, no permission), is not a regular
            file (a FIFO would hang the reader, a device such as /dev/zero fill the memory) or is larger
            than ``MAX_TOKENIZER_BYTES``.
    """
    source = os.fspath(path)
    raw = read_bounded(path, "tokenizer", MAX_TOKENIZER_BYTES)
    try:
        d = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise TokenizerFormatError(
            f"{source}: not a UTF-8 text file ({e.reason} at byte {e.start})"
        ) from None
    except json.JSONDecodeError as e:
        raise TokenizerFormatError(f"{source}: not valid JSON ({e})") from None
    except RecursionError:
        raise TokenizerFormatError(f"{source}: JSON nested too deeply") from None
    return tokenizer_from_dict(d, source=source)
