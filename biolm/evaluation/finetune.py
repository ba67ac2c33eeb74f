"""Full fine-tuning of a pretrained backbone with a small head: the recipe (options checked, targets
standardised, the head optionally started from the linear probe) around the Lightning task and run of
`biolm.tasks.finetune`.

Two options matter for small data: `head_init="probe"` starts the head as the linear probe of the frozen
backbone (`biolm.evaluation.head_init`), and `rc_augment=True` (DNA) reads every training row from a
random strand and averages validation and test outputs over both strands, for labels that do not
depend on the strand (enhancers, binding sites).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from biolm.domains import REVERSE_COMPLEMENT, domain_of
from biolm.errors import ConfigError
from biolm.evaluation.head_init import probe_as_linear, set_head
from biolm.models import BioLM
from biolm.tasks.finetune import (
    HEADS,
    LR_SCHEDULES,
    FineTuneTask,
    fit_and_predict,
    make_loader,
    pooled_states,
    seeded_task,
)

__all__ = ["HEADS", "HEAD_INITS", "LR_SCHEDULES", "finetune", "start_from_probe"]
HEAD_INITS = ("random", "probe")
log = logging.getLogger(__name__)


def finetune(
    backbone: BioLM,
    task: str,
    n_outputs: int,
    train: tuple[Sequence[np.ndarray], np.ndarray],
    valid: tuple[Sequence[np.ndarray], np.ndarray],
    test: tuple[Sequence[np.ndarray], np.ndarray],
    *,
    seed: int = 0,
    head: str = "linear",
    lr: float = 1e-4,
    weight_decay: float = 0.01,
    lr_schedule: str = "constant",
    batch_size: int = 16,
    max_epochs: int = 10,
    max_steps: int = -1,
    patience: int = 3,
    head_init: str = "random",
    rc_augment: bool = False,
    accelerator: str = "cpu",
    progress: bool = True,
) -> np.ndarray:
    """Fine-tune `backbone` on (token ids, labels) rows and predict the test rows with the best epoch.

    Args:
        head_init: "random", or "probe": the head starts as the linear probe of the frozen backbone
            (fitted on the train rows' pooled states, strength chosen on the valid rows; linear head).
        rc_augment: DNA models: train on random strands, validate and predict on both (see
            `FineTuneTask`'s `rc_table`).
        lr_schedule: "constant" or "warmup-cosine" (see `FineTuneTask`).

    Returns:
        Test outputs: [N, K] class probabilities or [N] predictions.

    Raises:
        ConfigError: an unknown head_init or lr_schedule, a decaying schedule without a step or
            epoch limit, a probe start for the mlp head, or rc_augment without a DNA model.
    """
    if head_init not in HEAD_INITS:
        raise ConfigError(f"head_init must be one of {HEAD_INITS}, got {head_init!r}")
    if lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if lr_schedule != "constant" and max_epochs < 0 and max_steps < 0:
        raise ConfigError(
            f"lr_schedule {lr_schedule!r} decays over the planned steps: set max_epochs or max_steps"
        )
    if head_init == "probe" and head != "linear":
        raise ConfigError("a probe start (head_init 'probe') needs the linear head, not 'mlp'")
    tok = backbone.tokenizer
    if rc_augment and not domain_of(tok).supports(REVERSE_COMPLEMENT):
        raise ConfigError(f"rc_augment needs a DNA model; this one reads {domain_of(tok).title}")
    y_train = np.asarray(train[1])
    mean, sd = (
        (0.0, 1.0) if task == "classification" else (float(y_train.mean()), float(y_train.std() or 1.0))
    )
    module = seeded_task(
        backbone.train(),
        task,
        n_outputs,
        head=head,
        lr=lr,
        weight_decay=weight_decay,
        lr_schedule=lr_schedule,
        target_mean=mean,
        target_sd=sd,
        rc_table=torch.tensor(tok.complement_table) if rc_augment else None,
        seed=seed,
    )
    if head_init == "probe":
        start_from_probe(module, train, valid, batch_size=batch_size, seed=seed, progress=progress)
    loaders = [
        make_loader(*train, tok, batch_size, True, seed),
        make_loader(*valid, tok, batch_size, False, seed),
        make_loader(*test, tok, batch_size, False, seed),
    ]
    return fit_and_predict(
        module,
        loaders,
        max_epochs=max_epochs,
        max_steps=max_steps,
        patience=patience,
        accelerator=accelerator,
        progress=progress,
    )


def start_from_probe(
    module: FineTuneTask,
    train: tuple[Sequence[np.ndarray], np.ndarray],
    valid: tuple[Sequence[np.ndarray], np.ndarray],
    *,
    batch_size: int,
    seed: int,
    progress: bool = False,
) -> float:
    """Fit the linear probe on the frozen pooled states and copy it into `module.head`; returns the
    chosen inverse strength C. With `rc_table`, both strands of every row are probe rows."""
    from biolm.evaluation.probe import fit_probe

    strands = 2 if module.rc_table is not None else 1
    x_train = pooled_states(module, train[0], batch_size, progress)
    x_valid = pooled_states(module, valid[0], batch_size, progress)
    # The probe's classes index its probability columns: class labels as integers.
    kind = int if module.task == "classification" else float
    y_train = np.tile(np.asarray(train[1]).astype(kind), strands)
    y_valid = np.tile(np.asarray(valid[1]).astype(kind), strands)
    n_outputs = module.head.out_features
    n_classes = n_outputs if module.task == "classification" else None
    probe, c = fit_probe(module.task, x_train, y_train, x_valid, y_valid, seed=seed, n_classes=n_classes)
    weight, bias = probe_as_linear(probe, module.task, n_outputs, module.target_mean, module.target_sd)
    set_head(module.head, weight, bias)
    log.info("fine-tuning starts from the linear probe (C = %g)", c)
    return c
