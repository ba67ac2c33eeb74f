"""The schema of a training config. Every YAML file and override is checked against it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from biolm.data.config import DataConfig
from biolm.errors import ConfigError
from biolm.models.config import ModelConfig

OBJECTIVES = ("clm", "mlm", "fim")


@dataclass
class TaskConfig:
    """The training objective.

    Attributes:
        objective: "clm" next-token prediction (every domain); "mlm" masked-token prediction
            (needs model.bidirectional=true); "fim" multi-span fill-in-the-middle (proteins; a causal
            LM on sequences whose spans are moved to the end behind sentinel tokens).
        fim_rate: share of training proteins put in fill-in-the-middle form (the rest stay plain, so
            the model also learns ordinary left-to-right generation).
        fim_max_spans: spans per protein are 1 to this many; also the number of sentinel tokens.
        mask_prob: "mlm": share of tokens chosen for prediction (of those: 80 % <mask>, 10 % a random
            token, 10 % unchanged).
    """

    objective: str = "clm"
    fim_rate: float = 0.5
    fim_max_spans: int = 3
    mask_prob: float = 0.15

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(
                f"task.objective must be one of {', '.join(OBJECTIVES)}; got {self.objective!r}"
            )
        if not 0.0 <= self.fim_rate <= 1.0:
            raise ConfigError(f"task.fim_rate must be in [0, 1], got {self.fim_rate}")
        if self.fim_max_spans < 1:
            raise ConfigError(f"task.fim_max_spans must be at least 1, got {self.fim_max_spans}")
        if not 0.0 < self.mask_prob < 1.0:
            raise ConfigError(f"task.mask_prob must be in (0, 1), got {self.mask_prob}")


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and cosine decay to `min_lr_ratio * lr` at the last step.

    `lr` 0 keeps the starting weights (AdamW's decay is scaled by lr too), e.g. to export a model
    given by `init_from` through a run; `grad_clip` 0 turns clipping off.
    """

    lr: float = 2e-3
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        # Checked here, before a run directory exists: AdamW would refuse some of these only once the
        # run has started, and accept others (a negative weight decay) that train nonsense. lr 0 is
        # allowed: the run goes through data, validation and export with the weights it starts with.
        if not 0.0 <= self.lr < math.inf:
            raise ConfigError(f"optim.lr must be >= 0 (0: the weights do not move), got {self.lr}")
        if not 0.0 <= self.weight_decay < math.inf:
            raise ConfigError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"optim.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not 0.0 <= self.grad_clip < math.inf:
            raise ConfigError(f"optim.grad_clip must be >= 0 (0: no clipping), got {self.grad_clip}")


NONFINITE_MODES = ("skip", "halt")


@dataclass
class TrainerConfig:
    """Passed to `lightning.Trainer` (see its documentation for the values), and biolm's fault options.

    Attributes:
        devices: devices per node ("auto": all there are); with more than one, Lightning starts one
            process per device.
        num_nodes: machines; each starts `devices` processes (torchrun, SLURM's srun, ...).
        strategy: "auto", "ddp", "fsdp", or another Lightning strategy name. Data are sharded per rank
            without duplicates; `data.batch_size` is per device and `data.windows_per_epoch` is for
            all ranks together.
        precision: "32-true", "bf16-mixed" (GPUs with bfloat16), "16-mixed", ...
        accumulate_grad_batches: batches per optimizer step.
        checkpoint_every_n_steps: how often `checkpoints/last.ckpt` is written (atomically).
        on_nonfinite: a step with a NaN or infinite loss (or gradients) updates no weight and is logged;
            "skip" goes on with the next batch, "halt" stops the run with an error.
        max_nonfinite_skips: with "skip", stop after this many consecutive skipped steps.
    """

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
    on_nonfinite: str = "skip"
    max_nonfinite_skips: int = 10

    def __post_init__(self) -> None:
        if self.on_nonfinite not in NONFINITE_MODES:
            raise ConfigError(
                f"trainer.on_nonfinite must be one of {', '.join(NONFINITE_MODES)}; got {self.on_nonfinite!r}"
            )
        if self.max_nonfinite_skips < 0:
            raise ConfigError(f"trainer.max_nonfinite_skips must be >= 0, got {self.max_nonfinite_skips}")
        if self.num_nodes < 1:
            raise ConfigError(f"trainer.num_nodes must be at least 1, got {self.num_nodes}")
        if self.accumulate_grad_batches < 1:
            raise ConfigError(
                f"trainer.accumulate_grad_batches must be at least 1, got {self.accumulate_grad_batches}"
            )
        if self.checkpoint_every_n_steps < 1:
            raise ConfigError(
                f"trainer.checkpoint_every_n_steps must be at least 1, got {self.checkpoint_every_n_steps}"
            )


@dataclass
class BaselineConfig:
    """The Markov model printed next to the language model's perplexity (DNA only)."""

    markov_order: int = 3


@dataclass
class TrainConfig:
    """A whole training run.

    Attributes:
        name: run name; the run directory is `<run_root>/<name>` (a number is appended if it exists).
        run_root: folder that holds run directories.
        seed: seeds weights, data order and sampling.
        init_from: a model directory (`runs/<name>/model`) whose weights start the run instead of random
            ones (fine-tuning, e.g. in-context training of an unconditional model). Its settings are
            the run's model settings, except model.backend, model.chunk_size and model.dropout; its
            tokenizer must be the one of the run's data. A resumed run starts from its checkpoint.
    """

    name: str = "dna"
    run_root: str = "runs"
    seed: int = 0
    init_from: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
