"""The one place a Lightning `Trainer` is built, for pretraining (`biolm.tasks.runner`) and fine-tuning
(`biolm.tasks.finetune`) alike: each passes its own callbacks, logger and limits; what they share is
here: a trainer option Lightning refuses is a `ConfigError`, not Lightning's exception, and every
checkpoint Lightning reads back goes through the weights-only loader (`SafeCheckpointIO`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins import CheckpointIO
from lightning.fabric.utilities.exceptions import MisconfigurationException

from biolm.errors import ConfigError
from biolm.tasks.checkpoints import SafeCheckpointIO


def build_trainer(
    *, root_dir: str | Path, callbacks: list, logger: Any, progress: bool, **options: Any
) -> L.Trainer:
    """A `lightning.Trainer` writing under `root_dir`, with a progress bar when `progress`.

    Args:
        root_dir: Lightning's `default_root_dir`.
        callbacks: Lightning callbacks, in order.
        logger: a Lightning logger, or False for none.
        progress: show the progress bar.
        **options: any other `lightning.Trainer` argument (limits, devices, precision, ...). Without a
            `CheckpointIO` among `plugins`, a `SafeCheckpointIO` is added: no checkpoint is ever
            unpickled in full.

    Raises:
        ConfigError: Lightning refuses an option; the message is the first line of its own.
    """
    plugins = list(options.pop("plugins", None) or [])
    if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
        plugins.append(SafeCheckpointIO())
    try:
        return L.Trainer(
            plugins=plugins,
            default_root_dir=root_dir,
            callbacks=callbacks,
            logger=logger,
            enable_progress_bar=progress,
            **options,
        )
    except (MisconfigurationException, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"trainer: {first}") from err
