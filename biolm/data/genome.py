"""Genome windows for DNA language modelling, read through pyfaidx.

A genome FASTA of any size is never read into memory: training windows are random slices drawn from
the training regions, validation windows tile a fixed, disjoint region at the end of each record.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from biolm.data.corpora import BUILTIN_GENOME
from biolm.data.markov import MarkovModel
from biolm.data.packing import IGNORE_INDEX, check_seq_len
from biolm.errors import ConfigError, InputError
from biolm.io.genome import open_fasta
from biolm.tokenizers import DNATokenizer, TokenizationError
from biolm.tokenizers.base import PAD_ID

log = logging.getLogger(__name__)

_SCAN_BLOCK = 1 << 22  # bases read at a time when scanning a genome


@dataclass(frozen=True)
class Region:
    """A half-open, 0-based stretch [start, end) of one FASTA record."""

    record: str
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start


class GenomeSource:
    """A genome FASTA split into training and validation regions.

    The last `val_fraction` of every record is held out for validation; the rest is for training.
    The FASTA is opened lazily in each process, so that the object can be sent to data-loader workers.

    Args:
        path: FASTA (plain or BGZF); None means the built-in C. diphtheriae genome.
        tokenizer: the DNA tokenizer (its `unknown` option decides what happens to odd characters).
        val_fraction: share of each record held out for validation, in (0, 0.5].
    """

    def __init__(self, path: str | os.PathLike | None, tokenizer: DNATokenizer, val_fraction: float) -> None:
        if not 0.0 < val_fraction <= 0.5:
            raise InputError(f"data.val_fraction must be in (0, 0.5], got {val_fraction}")
        self.builtin = path is None
        self.path = BUILTIN_GENOME if path is None else Path(path)
        self.tokenizer = tokenizer
        self._fasta = None
        lengths = {name: len(record) for name, record in self.fasta.records.items()}
        self.train_regions: list[Region] = []
        self.val_regions: list[Region] = []
        for name, length in lengths.items():
            val_length = int(round(length * val_fraction))
            if 0 < length - val_length:
                self.train_regions.append(Region(name, 0, length - val_length))
            if val_length > 0:
                self.val_regions.append(Region(name, length - val_length, length))
        if not self.train_regions or not self.val_regions:
            raise InputError(f"{self.path}: too short to split into training and validation regions")

    @property
    def fasta(self):
        if self._fasta is None:
            self._fasta = open_fasta(self.path, rebuild_index=not self.builtin)
        return self._fasta

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fasta": None}

    @property
    def train_length(self) -> int:
        return sum(len(r) for r in self.train_regions)

    def read(self, record: str, start: int, end: int) -> np.ndarray:
        """Token ids of bases [start, end) of `record`; errors name the file, record and position."""
        try:
            bases = self.fasta[record][start:end]
        except (OSError, EOFError, zlib.error, ValueError, RuntimeError) as err:  # Bio.bgzf: RuntimeError
            raise InputError(
                f"{self.path}: record {record!r}: cannot read bases {start}-{end}, damaged file? "
                f"({type(err).__name__}: {str(err).strip()[:120]})"
            ) from None
        try:
            return self.tokenizer.encode(bases, record=record)
        except TokenizationError as err:
            raise InputError(
                f"{self.path}: record {record!r}: invalid character {err.text!r} at position "
                f"{start + err.position} (DNA alphabet: ACGTN and IUPAC codes; set data.unknown=replace "
                "to read it as N)"
            ) from None

    def base_codes(self, ids: np.ndarray) -> np.ndarray:
        """Map token ids to 0..3 for A, C, G, T and -1 for anything else."""
        table = np.full(self.tokenizer.vocab_size, -1, dtype=np.int64)
        for code, base in enumerate("ACGT"):
            table[self.tokenizer.token_to_id(base)] = code
        return table[ids]

    def scan(self, markov_order: int) -> MarkovModel:
        """Read every base once: check the alphabet, and fit the order-k Markov baseline on the
        training regions. Streams in blocks, so memory stays flat for any genome size."""
        model = MarkovModel(markov_order)
        total = sum(len(record) for record in self.fasta.records.values())
        with tqdm(
            total=total, desc="scanning genome", unit="bp", unit_scale=True, disable=total < 2e7
        ) as bar:
            train_end = {r.record: r.end for r in self.train_regions}
            for name, record in self.fasta.records.items():
                length = len(record)
                for start in range(0, length, _SCAN_BLOCK):
                    end = min(start + _SCAN_BLOCK, length)
                    ids = self.read(name, start, end)
                    stop = min(end, train_end.get(name, 0))
                    if start < stop:
                        # Prefix the previous block's tail so that no transition is lost at block edges.
                        context_start = max(0, start - markov_order)
                        head = self.read(name, context_start, start) if context_start < start else ids[:0]
                        model.update(self.base_codes(np.concatenate([head, ids[: stop - start]])))
                    bar.update(end - start)
        return model

    def markov_nll(self, model: MarkovModel, windows: list[Region]) -> tuple[float, int]:
        """Summed NLL and target count of the Markov model on the same targets as the LM windows."""
        total, count = 0.0, 0
        for w in windows:
            context_start = max(0, w.start - model.order)
            ids = self.read(w.record, context_start, w.end)
            nll, n = model.nll(self.base_codes(ids), first_target=w.start - context_start)
            total, count = total + nll, count + n
        return total, count


def window_example(
    source: GenomeSource, window: Region, seq_len: int, reverse_complement: bool = False
) -> dict[str, torch.Tensor]:
    """Inputs `<bos> b1 .. b(L-1)` and labels `b1 .. bL` for one window, padded to `seq_len`.

    Labels of padding and of unknown bases (N) are IGNORE_INDEX: an N says nothing about the genome.
    With `reverse_complement`, b1 .. bL is the reverse complement of the window (the other strand read
    5' to 3'), so inputs and labels stay one shifted sequence.

    Returns:
        `input_ids` [seq_len] and `labels` [seq_len], int64.
    """
    tok = source.tokenizer
    ids = source.read(window.record, window.start, window.end)
    if reverse_complement:
        ids = tok.reverse_complement(ids)
    input_ids = np.full(seq_len, tok.pad_id, dtype=np.int64)
    labels = np.full(seq_len, IGNORE_INDEX, dtype=np.int64)
    input_ids[0] = tok.bos_id
    input_ids[1 : len(ids)] = ids[:-1]
    labels[: len(ids)] = np.where(source.base_codes(ids) >= 0, ids, IGNORE_INDEX)
    return {"input_ids": torch.from_numpy(input_ids), "labels": torch.from_numpy(labels)}


def stack_windows(examples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack `window_example`s into [B, S] and drop the trailing columns that are padding in every row.

    Windows are `seq_len` long but a short record (or the end of one) gives a shorter window, padded:
    a FASTA of many 200-500 bp sequences has a validation window of a few bases per record, and
    computing all of `seq_len` for each cost 20x the work (seen: 6 of a 10-minute run). Only columns
    with no input and no target go, so the causal loss is unchanged.
    """
    batch = {key: torch.stack([e[key] for e in examples]) for key in examples[0]}
    used = (batch["input_ids"] != PAD_ID) | (batch["labels"] != IGNORE_INDEX)
    width = int(used.any(0).nonzero().max()) + 1 if used.any() else 1
    return {key: value[:, :width] for key, value in batch.items()}


class TrainWindows(Dataset):
    """`num_windows` random windows per epoch, drawn uniformly over the training bases.

    Window i of epoch e depends only on (seed, e, i), so runs are reproducible and every data-parallel
    rank can draw its own share without coordination.

    Args:
        rc_augment: read each window from the reverse strand with probability 0.5 (a genome is
            double-stranded, so both readings are real sequence). The coin of window i in epoch e is
            its own stream seeded by (seed, e, i), so turning augmentation on moves no window.
    """

    def __init__(
        self, source: GenomeSource, seq_len: int, num_windows: int, seed: int, rc_augment: bool = False
    ) -> None:
        check_seq_len(seq_len)
        self.source, self.seq_len, self.num_windows, self.seed = source, seq_len, num_windows, seed
        self.rc_augment = rc_augment
        self.epoch = 0
        lengths = np.array([len(r) for r in source.train_regions], dtype=np.float64)
        self._cumulative = np.cumsum(lengths / lengths.sum())

    def __len__(self) -> int:
        return self.num_windows

    def window(self, index: int) -> Region:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        region_index = min(int(np.searchsorted(self._cumulative, rng.random())), len(self._cumulative) - 1)
        region = self.source.train_regions[region_index]
        last_start = max(region.start, region.end - self.seq_len)
        start = int(rng.integers(region.start, last_start + 1))
        return Region(region.record, start, min(start + self.seq_len, region.end))

    def flipped(self, index: int) -> bool:
        """Whether window `index` of this epoch is read as its reverse complement."""
        if not self.rc_augment:
            return False
        # A stream apart from window(): the trailing 1 keys it, so the window draw is unchanged.
        return bool(np.random.default_rng([self.seed, self.epoch, index, 1]).random() < 0.5)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return window_example(self.source, self.window(index), self.seq_len, self.flipped(index))


class TiledWindows(Sequence):
    """The windows tiling some regions, `seq_len` bases each (the last of a region may be shorter),
    computed on access: a genome of any size costs memory per region, not per window.

    Args:
        regions: the regions tiled, in order.
        seq_len: bases per window.
        keep: [m] window numbers to keep (in order); None keeps all.
    """

    def __init__(self, regions: list[Region], seq_len: int, keep: np.ndarray | None = None) -> None:
        self.regions, self.seq_len = regions, seq_len
        counts = np.array([-(-len(r) // seq_len) for r in regions], dtype=np.int64)
        self._first = np.concatenate([[0], np.cumsum(counts)])
        self.keep = keep

    @property
    def total(self) -> int:
        """Windows before thinning."""
        return int(self._first[-1])

    def __len__(self) -> int:
        return self.total if self.keep is None else len(self.keep)

    def __getitem__(self, index: int) -> Region:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        index = index % len(self)
        number = int(index if self.keep is None else self.keep[index])
        r = int(np.searchsorted(self._first, number, side="right")) - 1
        region = self.regions[r]
        start = region.start + (number - int(self._first[r])) * self.seq_len
        return Region(region.record, start, min(start + self.seq_len, region.end))

    def __iter__(self) -> Iterator[Region]:
        for i in range(len(self)):
            yield self[i]


class ValWindows(Dataset):
    """Non-overlapping windows tiling the validation regions (evenly thinned to `max_windows`).

    `windows` is a `TiledWindows` sequence, computed on access, so that the validation region of a
    large genome costs no memory per window."""

    def __init__(self, source: GenomeSource, seq_len: int, max_windows: int | None = None) -> None:
        check_seq_len(seq_len)
        if max_windows is not None and max_windows < 1:
            raise ConfigError(f"data.max_val_windows must be at least 1 (or null), got {max_windows}")
        self.source, self.seq_len = source, seq_len
        windows = TiledWindows(source.val_regions, seq_len)
        if max_windows is not None and windows.total > max_windows:
            windows.keep = np.linspace(0, windows.total - 1, max_windows).round().astype(np.int64)
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return window_example(self.source, self.windows[index], self.seq_len)


def open_builtin_genome():
    """The vendored C. diphtheriae chromosome (a `pyfaidx.Fasta`); its shipped index is used as is,
    never rewritten."""
    return open_fasta(BUILTIN_GENOME, rebuild_index=False)
