"""A DNA training run from a config: run directory, Trainer, final evaluation and export.

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

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from biolm.configs import to_train_config
from biolm.data.datamodule import GenomeDataModule
from biolm.data.genome import GenomeSource
from biolm.errors import InputError
from biolm.models.io import save
from biolm.tasks.callbacks import SetEpoch, Throughput
from biolm.tasks.clm import CausalLMTask
from biolm.tokenizers import DNATokenizer

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    run_dir: str
    model_dir: str
    steps: int
    val_loss: float
    val_ppl: float
    markov_order: int
    markov_ppl: float
    val_targets: int
    tokens_per_second: float
    parameters: int


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


def train_dna(config: DictConfig, *, resume_dir: Path | None = None, progress: bool = True) -> RunSummary:
    """Train a DNA language model as the config says; returns the final numbers.

    Args:
        config: a config checked by `biolm.configs.load_config`.
        resume_dir: continue this run from its newest checkpoint instead of starting a new one.
        progress: show progress bars.
    """
    cfg = to_train_config(config)
    tokenizer = DNATokenizer(unknown=cfg.data.unknown)
    cfg.model.vocab_size = tokenizer.vocab_size
    config.model.vocab_size = tokenizer.vocab_size

    source = GenomeSource(cfg.data.path, tokenizer, cfg.data.val_fraction)
    print(
        f"data: {'built-in genome ' if source.builtin else ''}{source.path} "
        f"({len(source.train_regions)} record(s); {source.train_length:,} bp training, "
        f"{sum(len(r) for r in source.val_regions):,} bp validation)"
    )
    markov = source.scan(cfg.baseline.markov_order)  # also checks every base before training starts

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
    task = CausalLMTask.from_configs(cfg.model, cfg.optim, cfg.trainer.max_steps)
    data = GenomeDataModule(source, cfg.data, cfg.seed)
    throughput = Throughput()
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
        throughput,
        SetEpoch(),
    ]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    t = cfg.trainer
    trainer = L.Trainer(
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
    trainer.fit(task, datamodule=data, ckpt_path=ckpt_path)

    # One more pass over the validation set with the final weights: these are the weights exported.
    val_loss = float(trainer.validate(task, datamodule=data, verbose=False)[0]["val_loss"])
    markov_nll, targets = source.markov_nll(markov, data.val_set.windows)
    model_dir = save(task.model, tokenizer, run_dir / "model")
    merge_metrics(run_dir)
    summary = RunSummary(
        run_dir=str(run_dir),
        model_dir=str(model_dir),
        steps=trainer.global_step,
        val_loss=val_loss,
        val_ppl=math.exp(val_loss),
        markov_order=markov.order,
        markov_ppl=math.exp(markov_nll / max(targets, 1)),
        val_targets=targets,
        tokens_per_second=throughput.tokens_per_second,
        parameters=task.model.num_parameters(),
    )
    with open(run_dir / "summary.json", "w") as handle:
        json.dump(summary.__dict__, handle, indent=2)
    return summary


def format_summary(s: RunSummary) -> str:
    rows = [
        ("validation loss", f"{s.val_loss:.4f} nats per nucleotide ({s.val_targets:,} targets)"),
        ("model perplexity", f"{s.val_ppl:.4f} per nucleotide"),
        (f"order-{s.markov_order} Markov", f"{s.markov_ppl:.4f} per nucleotide (same validation targets)"),
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
