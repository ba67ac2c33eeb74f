"""A training run from a config, for any domain: run directory, Trainer, final evaluation and export.

Domains differ only in how their data is built (`biolm.domains.Domain.training_data`, which may add a
baseline such as DNA's Markov model) and in which objectives apply; the Trainer, checkpoints, metrics
and export are shared.

Layout of a run directory `<run_root>/<name>/`:
    config.yaml     the resolved config (what `--resume` reads back)
    metrics.csv     every logged value, all sessions of the run merged
    logs/           Lightning's CSV logs, one version per session
    checkpoints/    last.ckpt (every N steps), best-*.ckpt (lowest val_loss), on_exception.ckpt
    model/          the exported model (`biolm.load` reads it)
    summary.json    the final numbers printed at the end

With several processes (`trainer.devices`, `trainer.num_nodes`), global rank 0 alone creates and
writes the run directory; checkpoints hold the data position and random states, so a resumed run
continues exactly where the killed one stopped (see `biolm.tasks.checkpoints`,
`biolm.data.datamodule.ResumableData`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from biolm.configs import to_train_config
from biolm.configs.schema import TrainConfig
from biolm.data.datamodule import ResumableData
from biolm.data.packing import IGNORE_INDEX
from biolm.data.ranks import announce, is_rank_zero
from biolm.domains import IN_CONTEXT, Domain, get_domain, registered
from biolm.errors import ConfigError, InputError
from biolm.io.files import write_atomic, write_text_atomic
from biolm.io.outputs import check_directory_output, check_new_directory
from biolm.models.io import MODEL_DIRECTORY, save
from biolm.tasks.callbacks import DataPosition, RNGStates, Throughput
from biolm.tasks.checkpoints import AtomicCheckpointIO, SafeOnExceptionCheckpoint, resume_checkpoint
from biolm.tasks.faults import NonFiniteGuard, RunStopped
from biolm.tasks.trainer import build_trainer
from biolm.tasks.warm_start import check_tokenizer, load_initial_model

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


def new_run_dir(run_root: str, name: str, create: bool = True) -> Path:
    """`<run_root>/<name>`, or `<name>-2`, `<name>-3`, ... if taken: a run never overwrites another.

    With `create`, the directory is made by `mkdir`, which is the claim: of two runs started at once
    with the same name, one gets `<name>` and the other moves on to `<name>-2`.
    """
    root = Path(run_root)
    n = 1
    while True:
        candidate = root / (name if n == 1 else f"{name}-{n}")
        n += 1
        if candidate.exists():
            continue
        if not create:
            return candidate
        root.mkdir(parents=True, exist_ok=True)
        try:
            candidate.mkdir()
        except FileExistsError:
            continue  # another run claimed it since exists() looked
        return candidate


def merge_metrics(run_dir: Path) -> Path:
    """Write `metrics.csv` from the CSV logs of every session of the run, in step order.

    A session that resumed a killed one supersedes, metric by metric, that one's values from the first
    step it logged the metric at (the killed session may have logged steps past its last checkpoint,
    which the resumed one redid); a last line cut short by the kill is dropped.
    """
    rows: list[dict] = []
    keys: list[str] = []
    for path in sorted(
        (run_dir / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:])
    ):
        text = path.read_text()
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        reader = csv.DictReader(text.splitlines())
        keys += [k for k in reader.fieldnames or [] if k not in keys]
        session = [r for r in reader if (r.get("step") or "").isdigit()]
        first: dict[str, int] = {}
        for row in session:
            for key, value in row.items():
                if key not in ("epoch", "step") and value not in (None, ""):
                    first[key] = min(first.get(key, int(row["step"])), int(row["step"]))
        for row in rows:
            for key, step in first.items():
                if row.get(key) and int(row["step"]) >= step:
                    row[key] = ""
        rows = [r for r in rows if any(v for k, v in r.items() if k not in ("epoch", "step"))] + session
    rows.sort(key=lambda r: int(r["step"]))

    def write(temp: Path) -> None:
        with open(temp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)

    return write_atomic(run_dir / "metrics.csv", write)


def _quiet_lightning() -> None:
    # On CPU, few workers is a deliberate choice (reading windows costs far less than a step).
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # OnExceptionCheckpoint makes Lightning look for a "last" checkpoint on every fresh fit; there is
    # none in a new run directory, and a resumed run names its checkpoint explicitly.
    warnings.filterwarnings("ignore", message=r".*\(ckpt_path=None\)` was called without a model.*")
    warnings.filterwarnings("ignore", message=r".*there is no last checkpoint available.*")
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
    # ResumableData is resumable through the DataModule's state_dict, which this check does not know.
    warnings.filterwarnings("ignore", message=r".*your dataloader is not resumable.*")
    # val_loss is reduced over ranks by the task itself (summed NLL / summed targets) before logging.
    warnings.filterwarnings("ignore", message=r".*sync_dist=True.*when logging on epoch level.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)


def check_objective(cfg: TrainConfig, domain: Domain) -> None:
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
    if objective not in domain.objectives:
        able = _titles(lambda d: objective in d.objectives)
        raise ConfigError(f"task.objective={objective} is for {able} models, not {domain.title}")
    if cfg.data.packing != "none" and not domain.supports(IN_CONTEXT):
        able = _titles(lambda d: d.supports(IN_CONTEXT))
        raise ConfigError(f"data.packing=sets is for {able} models (sets of members), not {domain.title}")
    if cfg.data.packing != "none" and objective == "fim":
        raise ConfigError("data.packing=sets does not combine with task.objective=fim yet")
    # Keys that only some domains read: set for another, they would be silently ignored.
    for key in ("loss_after_members", "rc_augment"):
        if getattr(cfg.data, key) and key not in domain.options:
            able = _titles(lambda d, key=key: key in d.options)
            raise ConfigError(f"data.{key} is for {able} models, not {domain.title}")


def _titles(applies: Callable[[Domain], bool]) -> str:
    """The titles of the registered domains for which `applies(domain)` holds, e.g. "protein or SMILES"."""
    return " or ".join(d.title for d in registered() if applies(d)) or "no"


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


def count_targets(datamodule: L.LightningDataModule) -> int:
    """Validation targets (labels that are not IGNORE_INDEX), for tasks that do not count them."""
    return sum(int((batch["labels"] != IGNORE_INDEX).sum()) for batch in datamodule.val_dataloader())


def train(
    config: DictConfig, domain: str | Domain = "dna", *, resume_dir: Path | None = None, progress: bool = True
) -> RunSummary:
    """Train a language model for `domain` as the config says; returns the final numbers.

    Args:
        config: a config checked by `biolm.configs.load_config`.
        domain: a registered domain's name or alias (`biolm.domains`: "dna", "protein", "chem"), or
            the `Domain` itself.
        resume_dir: continue this run from its newest checkpoint instead of starting a new one.
        progress: show progress bars.
    """
    try:
        domain = get_domain(domain) if isinstance(domain, str) else domain
    except InputError as err:
        raise ConfigError(str(err)) from None
    cfg = to_train_config(config)
    # A resumed run takes its weights from the checkpoint; its saved config has the starting model's settings.
    start = load_initial_model(cfg, config) if cfg.init_from and resume_dir is None else None
    check_objective(cfg, domain)
    # Where the run will write is checked before the data are read: an unwritable run_root, or (resuming)
    # a model/ directory the export at the end could not replace.
    if resume_dir is None:
        check_new_directory(Path(cfg.run_root) / cfg.name)
    else:
        check_directory_output(Path(resume_dir) / "model", MODEL_DIRECTORY)
    # Reads and checks all input before a run directory exists, so bad input leaves nothing behind.
    data = domain.training_data(cfg, start.tokenizer if start is not None else None)
    if start is not None:
        check_tokenizer(start, data.tokenizer, cfg.init_from)
    else:
        cfg.model.vocab_size = data.tokenizer.vocab_size
        config.model.vocab_size = data.tokenizer.vocab_size
    zero = is_rank_zero()
    if data.description:
        announce(data.description)

    # Only global rank 0 creates and writes the run directory; the other ranks (started by Lightning,
    # torchrun or srun) never write into it, and the checkpoint callbacks take rank 0's directory.
    if resume_dir is None:
        run_dir = new_run_dir(cfg.run_root, cfg.name, create=False)
        ckpt_path = None
    else:
        run_dir = resume_dir
        ckpt_path = resume_checkpoint(resume_dir, dataclasses.asdict(cfg.model), clean=zero)

    _quiet_lightning()
    throughput = Throughput()
    guard = NonFiniteGuard(cfg.trainer.on_nonfinite, cfg.trainer.max_nonfinite_skips)
    # Built before the run directory exists: a trainer option Lightning refuses leaves nothing behind.
    callbacks = [throughput, DataPosition(), RNGStates(), guard]
    trainer = _trainer(cfg, run_dir, callbacks, progress)
    if zero:
        if resume_dir is None:
            claimed = new_run_dir(cfg.run_root, cfg.name)
            if claimed != run_dir:  # another run took the name meanwhile: this one moves on
                run_dir = claimed
                trainer = _trainer(cfg, run_dir, callbacks, progress)
        else:
            run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(config))
        if ckpt_path is not None:
            announce(f"resuming from {ckpt_path}")
        announce(f"run directory: {run_dir}")

    L.seed_everything(cfg.seed, verbose=False)
    task = build_task(cfg, data.masking)
    if start is not None:
        task.model.load_state_dict(start.state_dict())
    datamodule = ResumableData(data.datamodule, cfg.seed)
    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException as err:
        # Lightning has written checkpoints/on_exception.ckpt; its own exit would report success.
        raise RunStopped(
            f"stopped by SIGTERM at step {trainer.global_step}; continue with "
            f"`biolm train {domain.name} --resume {run_dir}`"
        ) from err

    # One more pass over the validation set with the final weights: these are the weights exported.
    val_loss = float(trainer.validate(task, datamodule=datamodule, verbose=False)[0]["val_loss"])
    targets = getattr(task, "val_targets", 0) or count_targets(data.datamodule)
    markov: dict[str, Any] = {"markov_order": None, "markov_ppl": None}
    # The Markov model predicts the next base: comparable with a causal LM only, not with masked tokens.
    if data.baseline is not None and cfg.task.objective == "clm":
        order, nll, targets = data.baseline()
        markov = {"markov_order": order, "markov_ppl": math.exp(nll / max(targets, 1))}
    model_dir = run_dir / "model"
    if trainer.is_global_zero:
        save(task.model, data.tokenizer, model_dir)
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
        domain=domain.name,
        objective=cfg.task.objective,
    )
    if trainer.is_global_zero:
        write_text_atomic(run_dir / "summary.json", json.dumps(summary.__dict__, indent=2))
    return summary


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
        SafeOnExceptionCheckpoint(dirpath=ckpt_dir),
        *callbacks,
    ]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=10))
    t = cfg.trainer
    plugins: list = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        # Lightning's requeue-on-signal writes hpc_ckpt_*.ckpt files elsewhere; a job that requeues
        # itself runs `biolm train --resume` instead, which reads last.ckpt / on_exception.ckpt.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return build_trainer(
        root_dir=run_dir,
        # Every logged row reaches the disk at once: a killed run keeps its loss curve.
        logger=CSVLogger(save_dir=run_dir, name="logs", flush_logs_every_n_steps=1),
        callbacks=callbacks,
        progress=progress,
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
        plugins=plugins,
        # ResumableData shards every loader itself, without the duplicates DistributedSampler pads.
        use_distributed_sampler=False,
        enable_model_summary=progress,
    )


def format_summary(s: RunSummary) -> str:
    """The table printed at the end of a run; perplexity is per target token (per nucleotide for DNA)."""
    unit = get_domain(s.domain).perplexity_unit
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
