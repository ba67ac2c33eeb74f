"""The schema of a training config. Every YAML file and override is checked against it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from biolm.models.config import ModelConfig


@dataclass
class DataConfig:
    """Where training text comes from and how it is cut.

    Attributes:
        path: a FASTA file (plain or BGZF); null trains on the built-in genome.
        seq_len: tokens per training window.
        val_fraction: share at the end of each record held out for validation.
        windows_per_epoch: random training windows per epoch (an epoch ends with a validation).
        max_val_windows: cap on the validation windows (null: tile the whole validation region).
        batch_size: windows per batch (per device).
        num_workers: data-loader worker processes (0 reads in the training process).
        unknown: "error" stops on a character outside the alphabet; "replace" reads it as N.
    """

    path: str | None = None
    seq_len: int = 512
    val_fraction: float = 0.05
    windows_per_epoch: int = 2048
    max_val_windows: int | None = None
    batch_size: int = 16
    num_workers: int = 0
    unknown: str = "error"


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and cosine decay to `min_lr_ratio * lr` at the last step."""

    lr: float = 2e-3
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0


@dataclass
class TrainerConfig:
    """Passed to `lightning.Trainer` (see its documentation for the values)."""

    max_steps: int = 1000
    max_time: str | None = None  # "DD:HH:MM:SS"; stops early, still validates and exports
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 100


@dataclass
class BaselineConfig:
    """The Markov model printed next to the language model's perplexity."""

    markov_order: int = 3


@dataclass
class TrainConfig:
    """A whole training run.

    Attributes:
        name: run name; the run directory is `<run_root>/<name>` (a number is appended if it exists).
        run_root: folder that holds run directories.
        seed: seeds weights, data order and sampling.
    """

    name: str = "dna"
    run_root: str = "runs"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
