"""Family files for the protein generation recipe: the files of the arguments, and the distinct members
of each, tokenized."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biolm.errors import InputError


@dataclass
class FamilyData:
    """The distinct members of one family file, as text and as token ids."""

    name: str
    path: Path
    sequences: list[str]
    ids: list[np.ndarray]
    hmm: Path | None = None


def family_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The family files of the arguments: files as given, directories expanded to their sequence
    files (sorted)."""
    from biolm.io.proteins import is_sequence_file

    files: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            found = sorted(p for p in given.iterdir() if is_sequence_file(p))
            if not found:
                raise InputError(f"{given}: no FASTA/A3M/Stockholm files in the directory")
            files += found
        elif given.is_file():
            files.append(given)
        else:
            raise InputError(f"{given}: file not found")
    return files


def read_family(path: Path, tokenizer) -> FamilyData:
    """Distinct members of a family file (all alignments of a Stockholm file together), tokenized."""
    from biolm.io.proteins import read_protein_file
    from biolm.tokenizers import TokenizationError

    sequences, ids, seen = [], [], set()
    for family in read_protein_file(path):
        for record in family.records:
            if record.sequence in seen:
                continue
            seen.add(record.sequence)
            try:
                ids.append(tokenizer.encode(record.sequence, record=record.name).astype(np.int64))
            except TokenizationError as err:
                raise InputError(f"{path}: {err.reason} (after removing gaps)") from None
            sequences.append(record.sequence)
    name = path.name.split(".")[0]
    return FamilyData(name, path, sequences, ids)
