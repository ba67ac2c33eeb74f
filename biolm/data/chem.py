"""Reading molecules: SMILES files, CSV/TSV tables and directories of molecule sets, checked by RDKit.

Every molecule is parsed by RDKit and kept as its canonical SMILES, with the line it came from, so
that later messages can name it. A line RDKit cannot parse is skipped and counted; each file that had
any gets one warning (`ChemDataWarning`) with the count and the first few lines. Nothing else is
dropped here: blank lines, `#` comments and a header line are not molecules.

Formats, chosen by suffix (a trailing `.gz` is read through gzip):
    .smi, .txt, .smiles   SMILES, then optionally whitespace and a name; a header line whose first field
                          is a SMILES column name (e.g. `smiles`) is skipped.
    .csv, .tsv, .tab      a table with a header; the SMILES column is named or auto-detected.
"""

from __future__ import annotations

import array
import csv
import gzip
import io
import os
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biolm.data.cache import RaggedView, StoreWriter, cached_store
from biolm.errors import InputError

# Compared case-insensitively, in this order of preference.
SMILES_COLUMN_NAMES = ("smiles", "canonical_smiles", "isomeric_smiles", "smi", "smiles_string")
SMI_SUFFIXES = (".smi", ".smiles", ".txt")
TABLE_SUFFIXES = (".csv", ".tsv", ".tab")
WARNED_LINES = 5  # invalid lines quoted in a file's warning; the count covers all of them


class ChemDataWarning(UserWarning):
    """Molecules were skipped (invalid SMILES, tokens outside the vocabulary, too long)."""


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


def builtin_molecules_path() -> Path:
    """RDKit's bundled NCI sample (4,999 SMILES), the default chemistry corpus; nothing is downloaded."""
    from rdkit import RDConfig

    return Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"


def _stem(path: Path) -> str:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return name.rsplit(".", 1)[0] if "." in name else name


def _format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(TABLE_SUFFIXES):
        return "table"
    return "smi"


def _open_text(path: Path) -> io.TextIOBase:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    raw = gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # noqa: SIM115
    # newline="" lets the csv module see quoted line breaks; utf-8-sig drops a spreadsheet's BOM.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def choose_smiles_column(header: list[str], path: Path, smiles_column: str | None) -> int:
    """Index of the SMILES column: `smiles_column` if given (exact name), else a known name.

    Raises:
        InputError: naming the file, the columns it has and the `data.smiles_column` key.
    """
    if smiles_column is not None:
        if smiles_column in header:
            return header.index(smiles_column)
        raise InputError(f"{path}: no column {smiles_column!r} (data.smiles_column); columns are {header}")
    lowered = [h.strip().lower() for h in header]
    for name in SMILES_COLUMN_NAMES:
        if name in lowered:
            return lowered.index(name)
    raise InputError(
        f"{path}: no SMILES column found among {header}; name it with data.smiles_column "
        f"(looked for {', '.join(SMILES_COLUMN_NAMES)}, any case)"
    )


def iter_smiles_records(
    path: str | os.PathLike, smiles_column: str | None = None
) -> Iterator[tuple[int, str]]:
    """(line number, SMILES text) for every record of a file, before any chemistry check.

    Raises:
        InputError: a missing or unreadable file, a table without a usable SMILES column.
    """
    path = Path(path)
    try:
        with _open_text(path) as handle:
            if _format(path) == "table":
                delimiter = "," if path.name.lower().removesuffix(".gz").endswith(".csv") else "\t"
                reader = csv.reader(handle, delimiter=delimiter)
                header = next(reader, None)
                if header is None:
                    raise InputError(f"{path}: empty file, no header")
                column = choose_smiles_column(header, path, smiles_column)
                for row in reader:
                    if not row:  # a blank line
                        continue
                    yield reader.line_num, row[column].strip() if column < len(row) else ""
                return
            first = True
            for number, line in enumerate(handle, start=1):
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                smiles = text.split()[0]
                if first and smiles.lower() in SMILES_COLUMN_NAMES:
                    first = False
                    continue
                first = False
                yield number, smiles
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path}: cannot read ({err})") from None


def canonical_smiles(text: str) -> str | None:
    """RDKit's canonical SMILES of `text`, or None if RDKit cannot parse it (or it has no atoms)."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():  # our warning reports the line; RDKit's own log would only repeat it
        mol = Chem.MolFromSmiles(text)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return Chem.MolToSmiles(mol)


def canonical_records(
    path: str | os.PathLike, smiles_column: str | None = None
) -> Iterator[tuple[int, str, str | None]]:
    """(line number, SMILES text, canonical SMILES or None if RDKit cannot read it) of every record."""
    for number, text in iter_smiles_records(path, smiles_column):
        yield number, text, canonical_smiles(text) if text else None


def read_molecules(path: str | os.PathLike, smiles_column: str | None = None) -> MoleculeSet:
    """Every valid molecule of one file, in memory; invalid SMILES are skipped with one warning for the
    file. (Training reads files through the token cache instead: `stored_molecule_sets`.)

    Raises:
        InputError: as `iter_smiles_records`, or a file with no valid molecule at all.
    """
    path = Path(path)
    result = MoleculeSet(_stem(path), str(path))
    invalid: list[tuple[int, str]] = []
    for number, text, smiles in canonical_records(path, smiles_column):
        result.total += 1
        if smiles is None:
            invalid.append((number, text))
            continue
        result.smiles.append(smiles)
        result.lines.append(number)
    if invalid:
        warn_skipped(path, "invalid SMILES", invalid, result.total)
    if not result.smiles:
        raise InputError(f"{path}: no valid molecule ({result.total} records read)")
    return result


def warn_skipped(
    path: str | os.PathLike, why: str, skipped: list[tuple[int, str]], total: int, count: int | None = None
) -> None:
    """One `ChemDataWarning` for a file: the count (`count`, else `len(skipped)`), then the first
    `WARNED_LINES` lines and texts."""
    count = len(skipped) if count is None else count
    shown = "; ".join(f"line {n}: {t[:60]!r}" for n, t in skipped[:WARNED_LINES])
    more = f"; and {count - WARNED_LINES} more" if count > WARNED_LINES else ""
    warnings.warn(
        f"{path}: skipped {count} of {total} molecules ({why}): {shown}{more}",
        ChemDataWarning,
        stacklevel=3,
    )


def _is_molecule_file(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return path.is_file() and not path.name.startswith(".") and name.endswith(SMI_SUFFIXES + TABLE_SUFFIXES)


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
        files = [p for p in entries if _is_molecule_file(p)]
        if not files:
            suffixes = ", ".join(SMI_SUFFIXES + TABLE_SUFFIXES)
            raise InputError(f"{path}: no molecule files (suffixes {suffixes}, optionally .gz)")
        ignored = [p.name for p in entries if p not in files]
        if ignored:
            warnings.warn(f"{path}: ignored {len(ignored)} other entries: {ignored[:5]}", ChemDataWarning, 3)
        return files
    if not path.exists():
        raise InputError(f"{path}: file not found")
    return [path]


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

    The warnings about invalid SMILES are given again when a cached store is reused.

    Raises:
        InputError: as `read_molecule_sets`.
    """
    files = molecule_files(path)
    source = files[0] if path is None else Path(path)

    def build(writer: StoreWriter) -> tuple[dict, dict]:
        lines = array.array("q")
        sets = []
        for file in files:
            start, total, invalid, shown = len(writer), 0, 0, []
            for number, text, smiles in canonical_records(file, smiles_column):
                total += 1
                if smiles is None:
                    invalid += 1
                    if len(shown) < WARNED_LINES:
                        shown.append((number, text[:60]))
                    continue
                writer.append(smiles.encode("utf-8"))
                lines.append(number)
            if invalid:
                warn_skipped(file, "invalid SMILES", shown, total, count=invalid)
            if len(writer) == start:
                raise InputError(f"{file}: no valid molecule ({total} records read)")
            sets.append(
                {
                    "name": _stem(file),
                    "path": str(file),
                    "start": start,
                    "end": len(writer),
                    "total": total,
                    "invalid": invalid,
                    "shown": shown,
                }
            )
        return {"sets": sets}, {"lines": np.frombuffer(lines, dtype=np.int64).copy()}

    import rdkit

    depends_on = {"smiles_column": smiles_column, "rdkit": rdkit.__version__}
    store = cached_store("smiles", source, files, depends_on, build, describe="the molecules (RDKit)")
    result = []
    for entry in store.meta["sets"]:
        if store.from_cache and entry["invalid"]:  # reused: the build that warned ran in another process
            warn_skipped(
                entry["path"], "invalid SMILES", entry["shown"], entry["total"], count=entry["invalid"]
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
