"""Lightning DataModule for genome windows."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from biolm.configs.schema import DataConfig
from biolm.data.genome import GenomeSource, TrainWindows, ValWindows


class GenomeDataModule(L.LightningDataModule):
    """Random training windows and fixed validation windows from one `GenomeSource`."""

    def __init__(self, source: GenomeSource, config: DataConfig, seed: int) -> None:
        super().__init__()
        self.source, self.config = source, config
        self.train_set = TrainWindows(source, config.seq_len, config.windows_per_epoch, seed)
        self.val_set = ValWindows(source, config.seq_len, config.max_val_windows)

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        workers = self.config.num_workers
        return DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            persistent_workers=False,
        )

    def train_dataloader(self) -> DataLoader:
        # Windows are already random; index order only matters for reproducibility.
        return self._loader(self.train_set, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)
