"""Lightning DataModules: genome windows (DNA) and any pair of map-style datasets (proteins, ...), and
`ResumableData`, which shards any of them over data-parallel ranks and resumes mid-epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler

from biolm.data.config import DataConfig
from biolm.data.genome import GenomeSource, TrainWindows, ValWindows, stack_windows


class DatasetModule(L.LightningDataModule):
    """Loaders over a training and a validation dataset that draw their own randomness.

    The datasets decide what example i of an epoch is (from a seed and the epoch, see `ShardSampler`), so
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
        val_set = ValWindows(source, config.seq_len, config.max_val_windows)
        super().__init__(train_set, val_set, config, collate=stack_windows)
        self.source = source


class ShardSampler(Sampler[int]):
    """One rank's indices of an epoch, each example on exactly one rank, from a resumable position.

    Rank r of W takes examples r, r + W, r + 2W, ... For training (`even=True`) every rank takes the
    same number, len(dataset) // W: data-parallel ranks must run the same number of steps, and the
    last len % W examples of an epoch are left out rather than repeated (Lightning's
    `DistributedSampler` pads with duplicates instead). For validation (`even=False`) every example is
    taken once, so ranks may hold one example more or less.

    Because ranks interleave, the examples consumed after each rank has taken m of its own are exactly
    the first m * W of the epoch: a position is one number of examples, valid for any world size.

    Args:
        dataset: a map-style dataset; if it has an `epoch` attribute and `sets_epoch`, `set_epoch`
            (which Lightning calls before each epoch) sets it, since biolm's datasets draw example i of
            an epoch from (seed, epoch, i).
        rank, world_size: this process's global rank and the number of ranks.
        even: equal counts on every rank (training) or every example once (validation).
    """

    def __init__(
        self, dataset: Dataset, rank: int = 0, world_size: int = 1, even: bool = True, sets_epoch: bool = True
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.dataset, self.rank, self.world_size, self.sets_epoch = dataset, rank, world_size, sets_epoch
        size = len(dataset)  # type: ignore[arg-type]
        self.size = size - size % world_size if even else size
        self.epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, examples consumed on this rank)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.sets_epoch and hasattr(self.dataset, "epoch"):
            self.dataset.epoch = epoch

    def resume(self, epoch: int, examples: int) -> None:
        """Start at `epoch`, past its first `examples` examples (over all ranks, as ranks interleave)."""
        self.set_epoch(epoch)
        self._resume = (epoch, examples // self.world_size)

    def indices(self) -> range:
        """This rank's indices of the current epoch, past the resume position if it is that epoch's."""
        own = range(self.rank, self.size, self.world_size)
        if self._resume is not None and self._resume[0] == self.epoch:
            return own[self._resume[1] :]
        return own

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        # The whole epoch's share, also when resuming: Lightning counts the batches already done.
        return len(range(self.rank, self.size, self.world_size))


class ResumableData(L.LightningDataModule):
    """Wraps a DataModule of map-style datasets: per-rank shards and the data position in checkpoints.

    Its loaders are the wrapped module's, rebuilt on `ShardSampler`s (so the Trainer must not inject
    its own sampler: `use_distributed_sampler=False`). `state_dict` (which Lightning writes into every
    checkpoint) holds the epoch and the training examples consumed in it; a resumed run starts its
    loader right after them, so the interrupted epoch goes on with the examples it had not seen yet.
    `DataPosition` (a callback) counts batches as their training step completes.

    Args:
        inner: a DataModule whose `train_dataloader` / `val_dataloader` return plain DataLoaders over
            map-style datasets, without a sampler of their own.
        seed: seeds the loaders' own generators (worker base seeds), so that building a loader draws
            nothing from torch's global generator and a resumed run draws the same dropout masks.
    """

    def __init__(self, inner: L.LightningDataModule, seed: int = 0) -> None:
        super().__init__()
        self.inner, self.seed = inner, seed
        self.epoch, self.examples = 0, 0  # position: examples consumed (all ranks) in `epoch`
        self.examples_per_epoch = 0  # over all ranks, as sharded
        self._restored: dict | None = None

    def prepare_data(self) -> None:
        self.inner.prepare_data()

    def setup(self, stage: str) -> None:
        self.inner.trainer = self.trainer
        self.inner.setup(stage)

    def teardown(self, stage: str) -> None:
        self.inner.teardown(stage)

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _rebuild(self, loader: DataLoader, sampler: ShardSampler) -> DataLoader:
        if not isinstance(loader.sampler, SequentialSampler) or loader.batch_size is None:
            raise TypeError("ResumableData wraps loaders with a batch size and no sampler of their own")
        workers = loader.num_workers
        return DataLoader(
            loader.dataset,
            batch_size=loader.batch_size,
            sampler=sampler,
            num_workers=workers,
            collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory,
            drop_last=loader.drop_last,
            worker_init_fn=loader.worker_init_fn,
            prefetch_factor=loader.prefetch_factor if workers else None,
            persistent_workers=False,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank()
        loader = self.inner.train_dataloader()
        sampler = ShardSampler(loader.dataset, rank, world, even=True)
        self.examples_per_epoch = sampler.size
        if self._restored is not None:
            self.epoch, self.examples = int(self._restored["epoch"]), int(self._restored["examples"])
            self._restored = None
            sampler.resume(self.epoch, self.examples)
        return self._rebuild(loader, sampler)

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank()
        loader = self.inner.val_dataloader()
        return self._rebuild(loader, ShardSampler(loader.dataset, rank, world, even=False, sets_epoch=False))

    def batch_done(self, epoch: int, rows: int) -> None:
        """A training step of `epoch` has consumed a batch of `rows` examples on every rank."""
        if epoch != self.epoch:
            self.epoch, self.examples = epoch, 0
        self.examples += rows * self._rank()[1]

    def state_dict(self) -> dict:
        epoch, examples = self.epoch, self.examples
        if self.examples_per_epoch and examples >= self.examples_per_epoch:
            epoch, examples = epoch + 1, 0  # a finished epoch: the next one starts from its beginning
        return {"epoch": epoch, "examples": examples}

    def load_state_dict(self, state_dict: dict) -> None:
        self._restored = dict(state_dict)
