"""`init_from`: start a run from the weights of a trained model instead of random ones.

The use is fine-tuning: an unconditional SMILES model trained on a large corpus, say, continued with
in-context packs of molecule sets. The model directory decides the architecture (a run cannot change
the shapes of the weights it starts from); the run config keeps the settings that change no weight.
"""

from __future__ import annotations

import dataclasses

from omegaconf import DictConfig, OmegaConf

from biolm.configs.schema import TrainConfig
from biolm.data.ranks import announce
from biolm.errors import ConfigError, InputError
from biolm.models.backbone import BioLM
from biolm.tokenizers import Tokenizer

# Model settings a run may choose for itself: they change how the weights are used, not their shapes.
RUN_SETTINGS = ("backend", "chunk_size", "dropout")


def load_initial_model(cfg: TrainConfig, config: DictConfig) -> BioLM:
    """Load `cfg.init_from` and make it the run's model: `cfg.model` and `config.model` take the
    directory's settings (except RUN_SETTINGS), so that the saved run config can resume the run.

    Prints which settings of the run config were replaced.
    """
    from biolm.models.io import load

    try:
        start = load(cfg.init_from)
    except InputError as err:
        raise ConfigError(f"init_from: {err}") from None
    run = dataclasses.asdict(cfg.model)
    saved = dataclasses.asdict(start.config)
    for key in RUN_SETTINGS:
        saved[key] = run[key]
    # vocab_size is the tokenizer's in a new run; the directory's is the one its weights have.
    replaced = [
        f"{key} {run[key]!r} -> {saved[key]!r}"
        for key in saved
        if key != "vocab_size" and run[key] != saved[key]
    ]
    cfg.model = type(cfg.model)(**saved)
    config.model = OmegaConf.merge(config.model, saved)
    note = f" (replacing the config's {', '.join(replaced)})" if replaced else ""
    announce(f"init_from: weights and model settings of {cfg.init_from}{note}")
    return start


def check_tokenizer(start: BioLM, tokenizer: Tokenizer, path: str) -> None:
    """The run's data must be tokenized as the starting model was trained: same tokens, same ids."""
    theirs, ours = start.tokenizer.to_dict(), tokenizer.to_dict()
    if theirs["kind"] != ours["kind"] or theirs["tokens"] != ours["tokens"]:
        raise ConfigError(
            f"init_from: {path} was trained with a {theirs['kind']} tokenizer of {len(theirs['tokens'])} "
            f"tokens, not the {ours['kind']} tokenizer of this run's data ({len(ours['tokens'])} tokens)"
        )
