"""Lightning DataModule for chemistry: molecules or packed molecule sets, split and batched.

`build_chem_data(data_config, tokenizer, seed)` is the entry point for `biolm train chem`. It reads
these `data.*` keys (a key missing from the config takes the default shown, so a config written
before a key existed still works):

    path              null   file (.smi/.txt, .csv/.tsv, optionally .gz) or a directory of set files;
                             null = RDKit's bundled NCI sample (4,999 SMILES)
    seq_len           512    most tokens per example, <bos>/<eos> included; the packing budget
    val_fraction      0.05   share of each file held out for validation, in (0, 0.5]
    batch_size        16     examples per batch (per device)
    num_workers       0      data-loader worker processes
    max_val_windows   null   cap on validation examples (evenly thinned); null = all
    unknown           error  SMILES token outside the vocabulary: error | skip | replace (as <unk>)
    smiles_column     null   (new) SMILES column of a CSV/TSV; null = auto-detect (smiles, SMILES, ...)
    randomize_smiles  true   (new) training molecules as randomized SMILES, new each epoch
    packing           none   (new) none: one molecule per example; sets: molecules of one file packed
                             with <sep> up to seq_len, with `position_ids` restarting per molecule

Molecules RDKit cannot read, and molecules too large for RDKit (over the environment variable
`BIOLM_MAX_SMILES_ATOMS` atoms, 1,000 by default: `biolm.io.smiles`), are skipped with a warning per
file and reason, before any of these checks.

The validation split is random with a fixed seed derived from each file's name (not the run's seed,
so runs with different seeds are scored on the same molecules), over the molecules that pass the
checks; it is not a scaffold split, so validation molecules can share scaffolds with training ones.
"""

from __future__ import annotations

import zlib
from typing import Any

import lightning as L
import numpy as np
from torch.utils.data import DataLoader, Dataset, Subset

from biolm.data.cache import RaggedView
from biolm.data.chem import MoleculeSet, stored_molecule_sets
from biolm.data.chem_dataset import MoleculeDataset, MoleculeEncoder
from biolm.data.corpora import builtin_molecules_path
from biolm.data.molsets import PackedSets
from biolm.data.packing import pad_batch
from biolm.errors import InputError
from biolm.tokenizers import SmilesTokenizer

PACKING_MODES = ("none", "sets")
DEFAULTS: dict[str, Any] = {
    "path": None,
    "seq_len": 512,
    "val_fraction": 0.05,
    "batch_size": 16,
    "num_workers": 0,
    "max_val_windows": None,
    "unknown": "error",
    "smiles_column": None,
    "randomize_smiles": True,
    "packing": "none",
}


def split_molecules(molecules: MoleculeSet, val_fraction: float) -> tuple[MoleculeSet, MoleculeSet]:
    """(train, validation) parts of one set: round(n * val_fraction) molecules, at most n - 1, chosen at
    random with a seed fixed by the set's name; each part keeps file order."""
    n = len(molecules)
    n_val = min(int(round(n * val_fraction)), n - 1)
    rng = np.random.default_rng([0, zlib.crc32(molecules.name.encode())])
    val = np.sort(rng.permutation(n)[:n_val]) if n_val > 0 else np.zeros(0, dtype=np.int64)
    train = np.setdiff1d(np.arange(n), val)
    return molecules.subset(train), molecules.subset(val)


class ChemDataModule(L.LightningDataModule):
    """Batches of `input_ids`, `labels` [B, S] (and `position_ids` [B, S] when packing) from a training
    and a validation dataset (`MoleculeDataset` or `PackedSets`); see `biolm.data.chem_dataset`."""

    def __init__(
        self,
        train_set: Dataset,
        val_set: Dataset,
        batch_size: int,
        num_workers: int = 0,
        description: str = "",
    ) -> None:
        super().__init__()
        self.train_set, self.val_set = train_set, val_set
        self.batch_size, self.num_workers = batch_size, num_workers
        self.description = description

    def _loader(self, dataset: Dataset) -> DataLoader:
        # Datasets order themselves per epoch from (seed, epoch), so the loader never shuffles.
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=pad_batch,
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)


def _option(config: Any, key: str) -> Any:
    return getattr(config, key, DEFAULTS[key]) if config is not None else DEFAULTS[key]


def _joined(sets: list[MoleculeSet]) -> RaggedView:
    """The SMILES of every set, in order, as one view of their common store (nothing is copied)."""
    return RaggedView.concat([s.smiles for s in sets])


def build_chem_data(data_config: Any, tokenizer: SmilesTokenizer, seed: int) -> ChemDataModule:
    """Read, check, split and wrap the molecules that `data_config` (the `data` section) names.

    Args:
        data_config: `cfg.data` (dataclass or OmegaConf node); keys in the module docstring.
        tokenizer: the SMILES tokenizer of the model.
        seed: the run's seed; orders and randomizes training data (not the validation split).

    Raises:
        InputError: unreadable files, no valid molecules, a bad option value, no validation molecules.
    """
    val_fraction = _option(data_config, "val_fraction")
    if not 0.0 < val_fraction <= 0.5:
        raise InputError(f"data.val_fraction must be in (0, 0.5], got {val_fraction}")
    packing = _option(data_config, "packing")
    if packing not in PACKING_MODES:
        raise InputError(f"data.packing must be one of {', '.join(PACKING_MODES)}; got {packing!r}")
    encoder = MoleculeEncoder(tokenizer, _option(data_config, "unknown"), _option(data_config, "seq_len"))
    path = _option(data_config, "path")
    sets = [encoder.check(s) for s in stored_molecule_sets(path, _option(data_config, "smiles_column"))]
    splits = [split_molecules(s, val_fraction) for s in sets if len(s)]
    train_sets, val_sets = [t for t, _ in splits], [v for _, v in splits]
    n_train, n_val = sum(map(len, train_sets)), sum(map(len, val_sets))
    where = path if path is not None else f"built-in {builtin_molecules_path()}"
    if n_train == 0 or n_val == 0:
        raise InputError(f"{where}: too few usable molecules ({n_train} training, {n_val} validation)")
    randomize = bool(_option(data_config, "randomize_smiles"))
    if packing == "sets":
        train: Dataset = PackedSets(train_sets, encoder, seed, train=True, randomize=randomize)
        val: Dataset = PackedSets(val_sets, encoder, seed, train=False)
    else:
        train = MoleculeDataset(_joined(train_sets), encoder, seed, True, randomize)
        val = MoleculeDataset(_joined(val_sets), encoder, seed, train=False)
    cap = _option(data_config, "max_val_windows")
    if cap is not None and len(val) > cap:
        val = Subset(val, np.linspace(0, len(val) - 1, max(1, cap)).round().astype(int).tolist())
    description = (
        f"{where} ({len(train_sets)} set(s); {n_train:,} training, {n_val:,} validation molecules; "
        f"{len(train):,} training and {len(val):,} validation examples)"
    )
    return ChemDataModule(
        train, val, _option(data_config, "batch_size"), _option(data_config, "num_workers"), description
    )
