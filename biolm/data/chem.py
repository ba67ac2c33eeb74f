"""Molecule sets for training: the molecules of a file, a directory of files, or the built-in sample.

Files are read by `biolm.io.smiles` (formats there). Every molecule is parsed by RDKit and kept as its
canonical SMILES, with the line it came from, so that later messages can name it. A line RDKit cannot
parse is skipped and counted; each file that had any gets one warning (`ChemDataWarning`) with the
count and the first few lines. A SMILES too large for RDKit (`biolm.io.smiles.smiles_too_large`: over
`BIOLM_MAX_SMILES_ATOMS` atoms, 1,000 by default) is never given to RDKit; it is skipped and counted
the same way, in a warning of its own that names the bound and how to raise it.
"""

from __future__ import annotations

import array
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biolm.data.cache import RaggedView, StoreWriter, cached_store
from biolm.data.corpora import builtin_molecules_path
from biolm.errors import InputError
from biolm.io.files import input_file
from biolm.io.smiles import (
    MOLECULE_SUFFIXES,
    SMILES_CHARS_PER_ATOM,
    WARNED_LINES,
    ChemDataWarning,
    canonical_records,
    is_molecule_file,
    max_smiles_atoms,
    smiles_too_large,
    too_large_reason,
    warn_skipped,
)


@dataclass
class MoleculeSet:
    """The valid molecules of one file, in file order.

    Attributes:
        name: the file name without suffixes (e.g. `CHEMBL204_Ki`); the set's identity.
        path: the file they were read from.
        smiles: canonical (isomeric) SMILES of each molecule: a list, or for training
            (`stored_molecule_sets`) a `RaggedView` of a token cache that indexes like one.
        lines: 1-based line number of each molecule in `path` (a list, or an int64 array with a view).
        total: records read, valid or not.
    """

    name: str
    path: str
    smiles: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    total: int = 0

    def __len__(self) -> int:
        return len(self.smiles)

    def subset(self, keep: Sequence[int] | np.ndarray) -> MoleculeSet:
        """The molecules at positions `keep`, in that order (views stay views, lists stay lists)."""
        if isinstance(self.smiles, RaggedView):
            keep = np.asarray(keep, dtype=np.int64)
            return MoleculeSet(self.name, self.path, self.smiles.take(keep), self.lines[keep], self.total)
        return MoleculeSet(
            self.name, self.path, [self.smiles[i] for i in keep], [self.lines[i] for i in keep], self.total
        )


def _stem(path: Path) -> str:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return name.rsplit(".", 1)[0] if "." in name else name


def _no_valid_molecule(path: str | os.PathLike, total: int, too_large: int) -> InputError:
    why = f"; {too_large:,} {too_large_reason()}" if too_large else ""
    return InputError(f"{path}: no valid molecule ({total:,} records read{why})")


def read_molecules(path: str | os.PathLike, smiles_column: str | None = None) -> MoleculeSet:
    """Every valid molecule of one file, in memory; invalid SMILES and SMILES too large for RDKit are
    skipped with one warning for the file for each reason. (Training reads files through the token
    cache instead: `stored_molecule_sets`.)

    Raises:
        InputError: as `iter_smiles_records`, or a file with no valid molecule at all.
        ConfigError: a bad `BIOLM_MAX_SMILES_ATOMS`.
    """
    path = Path(path)
    result = MoleculeSet(_stem(path), str(path))
    invalid: list[tuple[int, str]] = []
    too_large: list[tuple[int, str]] = []
    for number, text, smiles in canonical_records(path, smiles_column):
        result.total += 1
        if smiles is None:
            (too_large if smiles_too_large(text) else invalid).append((number, text))
            continue
        result.smiles.append(smiles)
        result.lines.append(number)
    if invalid:
        warn_skipped(path, "invalid SMILES", invalid, result.total)
    if too_large:
        warn_skipped(path, too_large_reason(), too_large, result.total)
    if not result.smiles:
        raise _no_valid_molecule(path, result.total, len(too_large))
    return result


def molecule_files(path: str | os.PathLike | None) -> list[Path]:
    """The files of a molecule corpus: every molecule file of a directory (sorted by name, with a
    warning naming the other entries), the file itself, or for None the built-in NCI sample.

    Raises:
        InputError: a missing path or a directory without molecule files.
    """
    if path is None:
        return [builtin_molecules_path()]
    path = Path(path)
    if path.is_dir():
        entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        files = [p for p in entries if p.is_file() and is_molecule_file(p)]
        if not files:
            suffixes = ", ".join(MOLECULE_SUFFIXES)
            raise InputError(f"{path}: no molecule files (suffixes {suffixes}, optionally .gz)")
        ignored = [p.name for p in entries if p not in files]
        if ignored:
            warnings.warn(f"{path}: ignored {len(ignored)} other entries: {ignored[:5]}", ChemDataWarning, 3)
        return files
    return [input_file(path)]


def read_molecule_sets(path: str | os.PathLike | None, smiles_column: str | None = None) -> list[MoleculeSet]:
    """Molecule sets from a path, in memory: a directory gives one set per file (sorted by name), a file
    one set, None the built-in NCI sample.

    Raises:
        InputError: a missing path, a directory without molecule files, a file without valid molecules.
    """
    return [read_molecules(p, smiles_column) for p in molecule_files(path)]


def stored_molecule_sets(
    path: str | os.PathLike | None, smiles_column: str | None = None
) -> list[MoleculeSet]:
    """The sets of `read_molecule_sets`, read once (streamed) into a store of canonical SMILES (see
    `biolm.data.cache`) and cached on disk for a corpus of 32 MB or more, so that RDKit checks each
    file only once and no set is held in Python lists: `smiles` and `lines` of each set are views.

    The warnings about skipped SMILES are given again when a cached store is reused. The size bound
    on SMILES (`BIOLM_MAX_SMILES_ATOMS`) is part of the cache key: a store read under another bound
    is not reused.

    Raises:
        InputError: as `read_molecule_sets`.
        ConfigError: a bad `BIOLM_MAX_SMILES_ATOMS`.
    """
    files = molecule_files(path)
    source = files[0] if path is None else Path(path)

    def build(writer: StoreWriter) -> tuple[dict, dict]:
        lines = array.array("q")
        sets = []
        for file in files:
            start, total = len(writer), 0
            # Skipped molecules by reason: [count, the first WARNED_LINES (line, start of the text[, size])].
            invalid: list = [0, []]
            too_large: list = [0, []]
            for number, text, smiles in canonical_records(file, smiles_column):
                total += 1
                if smiles is None:
                    size = smiles_too_large(text)
                    skipped = too_large if size else invalid
                    skipped[0] += 1
                    if len(skipped[1]) < WARNED_LINES:
                        skipped[1].append((number, text[:60], size) if size else (number, text[:60]))
                    continue
                writer.append(smiles.encode("utf-8"))
                lines.append(number)
            if invalid[0]:
                warn_skipped(file, "invalid SMILES", invalid[1], total, count=invalid[0])
            if too_large[0]:
                warn_skipped(file, too_large_reason(), too_large[1], total, count=too_large[0])
            if len(writer) == start:
                raise _no_valid_molecule(file, total, too_large[0])
            sets.append(
                {
                    "name": _stem(file),
                    "path": str(file),
                    "start": start,
                    "end": len(writer),
                    "total": total,
                    "invalid": invalid[0],
                    "shown": invalid[1],
                    "too_large": too_large[0],
                    "too_large_shown": too_large[1],
                }
            )
        return {"sets": sets}, {"lines": np.frombuffer(lines, dtype=np.int64).copy()}

    import rdkit

    bound = max_smiles_atoms()
    depends_on = {
        "smiles_column": smiles_column,
        "rdkit": rdkit.__version__,
        "max_smiles": [bound, bound * SMILES_CHARS_PER_ATOM],
    }
    store = cached_store("smiles", source, files, depends_on, build, describe="the molecules (RDKit)")
    result = []
    for entry in store.meta["sets"]:
        if store.from_cache:  # reused: the build that warned ran in another process
            if entry["invalid"]:
                warn_skipped(
                    entry["path"], "invalid SMILES", entry["shown"], entry["total"], count=entry["invalid"]
                )
            if entry.get("too_large"):
                warn_skipped(
                    entry["path"],
                    too_large_reason(),
                    entry["too_large_shown"],
                    entry["total"],
                    count=entry["too_large"],
                )
        index = np.arange(entry["start"], entry["end"], dtype=np.int64)
        result.append(
            MoleculeSet(
                entry["name"],
                entry["path"],
                RaggedView(store, index, text=True),
                store.extra["lines"][index],
                entry["total"],
            )
        )
    return result
