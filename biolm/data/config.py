"""`data:` of a training config: where the training text comes from and how it is cut. It lives with
the data code that reads it, so that importing `biolm.data` never loads the model stack;
`biolm.configs.schema` composes it with the other sections."""

from __future__ import annotations

from dataclasses import dataclass

from biolm.errors import ConfigError

PACKING_MODES = ("none", "sets")


@dataclass
class DataConfig:
    """Where training text comes from and how it is cut.

    Attributes:
        path: null trains on the domain's built-in corpus. DNA: a FASTA file (plain, BGZF, or plain gzip,
            converted once to a BGZF copy in the cache).
            Protein: a FASTA, A3M or Stockholm file (gzip allowed), or a directory of family files.
        seq_len: tokens per training window (DNA) or the most tokens of one example (protein).
        val_fraction: DNA: share at the end of each record held out for validation; protein: share of
            each family's proteins held out (a fixed-seed choice).
        windows_per_epoch: random training windows (examples) per epoch; an epoch ends with a validation.
        max_val_windows: cap on the validation windows or examples (null: DNA tiles the whole validation
            region, proteins use every validation protein, in-context packing makes 64 packs).
        batch_size: windows (examples) per batch (per device).
        num_workers: data-loader worker processes (0 reads in the training process).
        unknown: "error" stops on a character outside the alphabet; "replace" reads it as N (DNA), X
            (protein) or <unk> (chem); chem also has "skip" (leave such molecules out, with a warning).
        rc_augment: DNA: read each training window from the reverse strand with probability 0.5.
        packing: "none": one sequence per example. "sets" (in-context learning): members of one set
            (a protein family file, a molecule file) packed with <sep> up to `seq_len` tokens, with
            `position_ids` restarting at 0 for each member.
        loss_after_members: protein with packing=sets: no loss on the first k members of each pack
            (they are context only).
        smiles_column: chem: the SMILES column of a CSV/TSV file (null: auto-detect).
        randomize_smiles: chem: train on randomized SMILES, new each epoch.
    """

    path: str | None = None
    seq_len: int = 512
    val_fraction: float = 0.05
    windows_per_epoch: int = 2048
    max_val_windows: int | None = None
    batch_size: int = 16
    num_workers: int = 0
    unknown: str = "error"
    rc_augment: bool = False
    packing: str = "none"
    loss_after_members: int = 0
    smiles_column: str | None = None
    randomize_smiles: bool = True

    def __post_init__(self) -> None:
        if self.packing not in PACKING_MODES:
            raise ConfigError(f"data.packing must be one of {', '.join(PACKING_MODES)}; got {self.packing!r}")
        if self.loss_after_members < 0:
            raise ConfigError(f"data.loss_after_members must be >= 0, got {self.loss_after_members}")
        for key in ("batch_size", "windows_per_epoch"):
            if getattr(self, key) < 1:
                raise ConfigError(f"data.{key} must be at least 1, got {getattr(self, key)}")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.loss_after_members and self.packing != "sets":
            raise ConfigError("data.loss_after_members needs data.packing=sets")
