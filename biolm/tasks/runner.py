"""A training run from a config, for any domain: run directory, Trainer, final evaluation and export.

Domains differ only in how their data is built (`biolm.tasks.domains`) and in the DNA-only Markov
baseline; the Trainer, checkpoints, metrics and export are shared.

Layout of a run directory `<run_root>/<name>/`:
    config.yaml     the resolved config (what `--resume` reads back)
    metrics.csv     every logged value, all sessions of the run merged
    logs/           Lightning's CSV logs, one version per session
    checkpoints/    last.ckpt (every N steps), best-*.ckpt (lowest val_loss), on_exception.ckpt
    model/          the exported model (`biolm.load` reads it)
    summary.json    the final numbers printed at the end
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from biolm.configs import to_train_config
from biolm.configs.schema import TrainConfig
from biolm.errors import ConfigError, InputError
from biolm.models.io import save
from biolm.tasks.callbacks import SetEpoch, Throughput
from biolm.tasks.domains import DOMAINS, build_data, count_targets

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """The final numbers of a run (also `summary.json`); the Markov fields are set for DNA only."""

    run_dir: str
    model_dir: str
    steps: int
    val_loss: float
    val_ppl: float
    markov_order: int | None
    markov_ppl: float | None
    val_targets: int
    tokens_per_second: float
    parameters: int
    domain: str = "dna"
    objective: str = "clm"


def new_run_dir(run_root: str, name: str) -> Path:
    """`<run_root>/<name>`, or `<name>-2`, `<name>-3`, ... if taken: a run never overwrites another."""
    root = Path(run_root)
    candidate, n = root / name, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{name}-{n}"
    candidate.mkdir(parents=True)
    return candidate


def resume_checkpoint(run_dir: Path) -> Path:
    """The newest checkpoint of a run (periodic or written on an exception)."""
    found = [
        p for p in (run_dir / "checkpoints").glob("*.ckpt") if p.name.startswith(("last", "on_exception"))
    ]
    if not found:
        raise InputError(f"{run_dir}: no checkpoint to resume from (checkpoints/last.ckpt is missing)")
    return max(found, key=lambda p: p.stat().st_mtime)


def merge_metrics(run_dir: Path) -> Path:
    """Write `metrics.csv` from the CSV logs of every session of the run, in step order."""
    rows, keys = [], []
    for path in sorted(
        (run_dir / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:])
    ):
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            keys += [k for k in reader.fieldnames or [] if k not in keys]
            rows += list(reader)
    rows.sort(key=lambda r: int(r.get("step") or 0))
    out = run_dir / "metrics.csv"
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return out


def _quiet_lightning() -> None:
    # On CPU, few workers is a deliberate choice (reading windows costs far less than a step).
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # OnExceptionCheckpoint makes Lightning look for a "last" checkpoint on every fresh fit; there is
    # none in a new run directory, and a resumed run names its checkpoint explicitly.
    warnings.filterwarnings("ignore", message=r".*\(ckpt_path=None\)` was called without a model.*")
    warnings.filterwarnings("ignore", message=r".*there is no last checkpoint available.*")
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)


def check_objective(cfg: TrainConfig, domain: str) -> None:
    """Refuse combinations that would train the wrong thing, before any work is done."""
    objective, bidirectional = cfg.task.objective, getattr(cfg.model, "bidirectional", False)
    if objective == "mlm" and not bidirectional:
        raise ConfigError("task.objective=mlm needs model.bidirectional=true (masked tokens see both sides)")
    if objective != "mlm" and bidirectional:
        raise ConfigError(
            f"task.objective={objective} is next-token prediction; a model.bidirectional=true model would "
            "see the token it predicts (use task.objective=mlm)"
        )
    if getattr(cfg.model, "rc_equivariant", False) and objective != "mlm":
        raise ConfigError(
            "model.rc_equivariant reads the sequence from both ends; train it with task.objective=mlm"
        )
    if objective == "fim" and domain != "protein":
        raise ConfigError(f"task.objective=fim is for proteins, not {domain}")
    if cfg.data.packing != "none" and domain == "dna":
        raise ConfigError("data.packing=sets is for protein families and molecule sets, not DNA")
    if cfg.data.packing != "none" and objective == "fim":
        raise ConfigError("data.packing=sets does not combine with task.objective=fim yet")
    if cfg.data.loss_after_members and domain != "protein":
        raise ConfigError(f"data.loss_after_members is for protein families, not {domain}")
    if cfg.data.rc_augment and domain != "dna":
        raise ConfigError(f"data.rc_augment is for DNA, not {domain}")


def build_task(cfg: TrainConfig, masking: dict | None = None) -> L.LightningModule:
    """The LightningModule of the configured objective (fim is a causal LM on reformatted data).

    Args:
        masking: the domain's `MaskedLMTask` options (`DomainData.masking`), for objective mlm.
    """
    if cfg.task.objective == "mlm":
        from biolm.tasks.mlm import MaskedLMTask

        return MaskedLMTask.from_configs(
            cfg.model,
            cfg.optim,
            cfg.trainer.max_steps,
            mask_prob=cfg.task.mask_prob,
            seed=cfg.seed,
            **(masking or {}),
        )
    from biolm.tasks.clm import CausalLMTask

    return CausalLMTask.from_configs(cfg.model, cfg.optim, cfg.trainer.max_steps)


def train(
    config: DictConfig, domain: str = "dna", *, resume_dir: Path | None = None, progress: bool = True
) -> RunSummary:
    """Train a language model for `domain` as the config says; returns the final numbers.

    Args:
        config: a config checked by `biolm.configs.load_config`.
        domain: "dna", "protein", "chem" (or another key of `biolm.tasks.domains.DOMAINS`).
        resume_dir: continue this run from its newest checkpoint instead of starting a new one.
        progress: show progress bars.
    """
    if domain not in DOMAINS:
        raise ConfigError(f"unknown domain {domain!r}; available: {', '.join(DOMAINS)}")
    cfg = to_train_config(config)
    check_objective(cfg, domain)
    # Reads and checks all input before a run directory exists, so bad input leaves nothing behind.
    data = build_data(domain, cfg)
    cfg.model.vocab_size = data.tokenizer.vocab_size
    config.model.vocab_size = data.tokenizer.vocab_size
    if data.description:
        print(data.description)

    if resume_dir is None:
        run_dir = new_run_dir(cfg.run_root, cfg.name)
        OmegaConf.save(config, run_dir / "config.yaml")
        ckpt_path = None
    else:
        run_dir, ckpt_path = resume_dir, resume_checkpoint(resume_dir)
        OmegaConf.save(config, run_dir / "config.yaml")
        print(f"resuming from {ckpt_path}")
    print(f"run directory: {run_dir}")

    _quiet_lightning()
    L.seed_everything(cfg.seed, verbose=False)
    task = build_task(cfg, data.masking)
    throughput = Throughput()
    trainer = _trainer(cfg, run_dir, [throughput, SetEpoch()], progress)
    trainer.fit(task, datamodule=data.datamodule, ckpt_path=ckpt_path)

    # One more pass over the validation set with the final weights: these are the weights exported.
    val_loss = float(trainer.validate(task, datamodule=data.datamodule, verbose=False)[0]["val_loss"])
    targets = getattr(task, "val_targets", 0) or count_targets(data.datamodule)
    markov: dict[str, Any] = {"markov_order": None, "markov_ppl": None}
    # The Markov model predicts the next base: comparable with a causal LM only, not with masked tokens.
    if data.baseline is not None and cfg.task.objective == "clm":
        order, nll, targets = data.baseline()
        markov = {"markov_order": order, "markov_ppl": math.exp(nll / max(targets, 1))}
    model_dir = save(task.model, data.tokenizer, run_dir / "model")
    merge_metrics(run_dir)
    summary = RunSummary(
        run_dir=str(run_dir),
        model_dir=str(model_dir),
        steps=trainer.global_step,
        val_loss=val_loss,
        val_ppl=math.exp(val_loss),
        **markov,
        val_targets=targets,
        tokens_per_second=throughput.tokens_per_second,
        parameters=task.model.num_parameters(),
        domain=domain,
        objective=cfg.task.objective,
    )
    with open(run_dir / "summary.json", "w") as handle:
        json.dump(summary.__dict__, handle, indent=2)
    return summary


def train_dna(config: DictConfig, *, resume_dir: Path | None = None, progress: bool = True) -> RunSummary:
    """`train(config, "dna", ...)`, kept for callers of the DNA-only API."""
    return train(config, "dna", resume_dir=resume_dir, progress=progress)


def _trainer(cfg: TrainConfig, run_dir: Path, callbacks: list, progress: bool) -> L.Trainer:
    ckpt_dir = run_dir / "checkpoints"
    callbacks = [
        ModelCheckpoint(dirpath=ckpt_dir, filename="best-{step}", monitor="val_loss", save_top_k=1),
        ModelCheckpoint(
            dirpath=ckpt_dir,
            save_last=True,
            save_top_k=0,
            every_n_train_steps=cfg.trainer.checkpoint_every_n_steps,
        ),
        OnExceptionCheckpoint(dirpath=ckpt_dir),
        *callbacks,
    ]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    t = cfg.trainer
    return L.Trainer(
        max_steps=t.max_steps,
        max_epochs=-1,
        max_time=t.max_time,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        accumulate_grad_batches=t.accumulate_grad_batches,
        gradient_clip_val=cfg.optim.grad_clip or None,
        log_every_n_steps=t.log_every_n_steps,
        logger=CSVLogger(save_dir=run_dir, name="logs"),
        callbacks=callbacks,
        enable_progress_bar=progress,
        enable_model_summary=progress,
        default_root_dir=run_dir,
    )


def format_summary(s: RunSummary) -> str:
    """The table printed at the end of a run; perplexity is per target token (per nucleotide for DNA)."""
    unit = "nucleotide" if s.domain == "dna" else "token"
    masked = " (masked tokens)" if s.objective == "mlm" else ""
    rows = [
        ("validation loss", f"{s.val_loss:.4f} nats per {unit} ({s.val_targets:,} targets){masked}"),
        ("model perplexity", f"{s.val_ppl:.4f} per {unit}"),
    ]
    if s.markov_order is not None:
        rows.append(
            (f"order-{s.markov_order} Markov", f"{s.markov_ppl:.4f} per {unit} (same validation targets)")
        )
    rows += [
        (
            "training speed",
            f"{s.tokens_per_second:,.0f} tokens/s"
            if math.isfinite(s.tokens_per_second)
            else "n/a (no training step in this session)",
        ),
        ("steps", f"{s.steps:,} ({s.parameters:,} parameters)"),
        ("model directory", s.model_dir),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0
