"""Lightning DataModules: genome windows (DNA) and any pair of map-style datasets (proteins, ...)."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
from torch.utils.data import DataLoader, Dataset

from biolm.configs.schema import DataConfig
from biolm.data.genome import GenomeSource, TrainWindows, ValWindows


class DatasetModule(L.LightningDataModule):
    """Loaders over a training and a validation dataset that draw their own randomness.

    The datasets decide what example i of an epoch is (from a seed and the epoch, see `SetEpoch`), so
    loaders never shuffle and runs are reproducible for any number of workers.

    Args:
        train_set, val_set: map-style datasets of example dicts.
        config: batch size and worker count.
        collate: builds a batch from a list of examples (None: torch's default stacking).
    """

    def __init__(
        self, train_set: Dataset, val_set: Dataset, config: DataConfig, collate: Callable | None = None
    ) -> None:
        super().__init__()
        self.train_set, self.val_set, self.config, self.collate = train_set, val_set, config, collate

    def _loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            shuffle=False,
            num_workers=self.config.num_workers,
            persistent_workers=False,
            collate_fn=self.collate,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)


class GenomeDataModule(DatasetModule):
    """Random training windows and fixed validation windows from one `GenomeSource`."""

    def __init__(self, source: GenomeSource, config: DataConfig, seed: int) -> None:
        # Passed only when on, so that the plain DNA run does not depend on the option's existence.
        extra = {"rc_augment": True} if getattr(config, "rc_augment", False) else {}
        train_set = TrainWindows(source, config.seq_len, config.windows_per_epoch, seed, **extra)
        super().__init__(train_set, ValWindows(source, config.seq_len, config.max_val_windows), config)
        self.source = source
