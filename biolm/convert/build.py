"""A biolm model from converted weights: the config the weights imply, the vocabulary's rows moved to
biolm's ids, every parameter accounted for."""

from __future__ import annotations

from pathlib import Path

import torch

from biolm.convert.vocabulary import moved_rows, unused_ids
from biolm.convert.xlstm_stack import Stack
from biolm.errors import ConfigError, InputError
from biolm.models import BioLM
from biolm.models.config import ModelConfig
from biolm.tokenizers import Tokenizer


def build_model(
    stack: Stack,
    tokenizer: Tokenizer,
    mapping: list[int | None],
    embedding: torch.Tensor,
    head: torch.Tensor,
    source: Path,
) -> BioLM:
    """The biolm model of a converted stack, its embedding and output rows at the tokenizer's ids.

    Args:
        stack: the blocks' weights and the settings they imply.
        tokenizer: the converted model's tokenizer.
        mapping: the biolm id of each reference id (None: a slot biolm does not use).
        embedding, head: the reference's [V_ref, d] input embedding and output projection.
        source: the checkpoint, for messages.

    Raises:
        InputError: settings biolm cannot represent, or weights that do not fit them, naming `source`.
    """
    vocab_size = tokenizer.vocab_size
    try:
        config = ModelConfig(
            vocab_size=vocab_size, unused_ids=unused_ids(mapping, vocab_size) or None, **stack.settings
        )
    except ConfigError as err:
        raise InputError(f"{source}: biolm cannot represent this model: {err}") from None
    widths = {
        stack.weights[f"blocks.{i}.layer.proj_down.weight"].shape[1]
        for i, letter in enumerate(config.block_types())
        if letter == "m"
    }
    inner = widths.pop() if len(widths) == 1 else None
    if widths:
        raise InputError(f"{source}: mLSTM blocks of different widths; biolm's share one")
    if inner is not None and config.inner_dim != inner:
        raise InputError(
            f"{source}: an mLSTM width of {inner} that biolm's heads and blocks "
            f"({config.num_heads} x {config.qkv_block_size}) do not divide"
        )
    model = BioLM(config)
    weights = dict(stack.weights)
    weights["embedding.weight"] = moved_rows(embedding.float(), mapping, vocab_size)
    weights["lm_head.weight"] = moved_rows(head.float(), mapping, vocab_size)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise InputError(f"{source}: the checkpoint has no weights for biolm's {missing[0]}")
    for name, value in weights.items():
        if name not in expected or tuple(expected[name].shape) != tuple(value.shape):
            want = tuple(expected[name].shape) if name in expected else "nothing"
            raise InputError(
                f"{source}: weights of shape {tuple(value.shape)} for {name}, where the model's settings "
                f"need {want}"
            )
    if not all(torch.isfinite(v).all() for v in weights.values()):
        bad = next(name for name, v in weights.items() if not torch.isfinite(v).all())
        raise InputError(f"{source}: NaN or infinite values in the weights of {bad}")
    model.load_state_dict(weights, strict=True)
    return model.eval()
