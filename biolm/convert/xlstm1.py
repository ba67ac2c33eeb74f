"""NX-AI xlstm 1.x models: a directory with `config.yaml` (the `xLSTMLMModelConfig` YAML of the xlstm
README) and `model.pt` (`torch.save(model.state_dict())`, keys `xlstm_block_stack.*`,
`token_embedding.weight`, `lm_head.weight`). The package has no tokenizer: its ids are the ids of the
biolm tokenizer named by `--tokenizer`.
"""

from __future__ import annotations

from pathlib import Path

from biolm.convert.build import build_model
from biolm.convert.checkpoint import MAX_SIDE_FILE_BYTES, load_torch
from biolm.convert.vocabulary import output_matrix
from biolm.convert.xlstm_stack import read_stack
from biolm.errors import ArgumentError, InputError
from biolm.io.yaml_files import read_yaml
from biolm.models import BioLM
from biolm.tokenizers import Tokenizer, get_tokenizer

NAME = "xlstm 1.x"
CONFIG = "config.yaml"
WEIGHTS = "model.pt"
# Keys of xlstm's xLSTMLMModelConfig: a config.yaml with them is one (a biolm model's has `format`).
_CONFIG_KEYS = {"mlstm_block", "slstm_block", "num_blocks", "embedding_dim", "slstm_at"}


def detect(source: Path) -> bool:
    if not (source.is_dir() and (source / CONFIG).exists() and (source / WEIGHTS).exists()):
        return False
    try:
        config = read_yaml(source / CONFIG, "config", MAX_SIDE_FILE_BYTES)
    except InputError:
        return False
    return isinstance(config, dict) and bool(_CONFIG_KEYS & set(config))


def read(source: Path, tokenizer_kind: str | None = None) -> tuple[BioLM, Tokenizer]:
    """The biolm model of an xlstm 1.x checkpoint directory, with the tokenizer `tokenizer_kind`."""
    if tokenizer_kind is None:
        raise ArgumentError(
            f"{source}: an xlstm 1.x model has no vocabulary of its own; name the biolm tokenizer its ids "
            "are with {tokenizer} (dna, protein or smiles)",
            "tokenizer",
        )
    config_path, weights_path = source / CONFIG, source / WEIGHTS
    config = read_yaml(config_path, "config", MAX_SIDE_FILE_BYTES)
    state = load_torch(weights_path, "xlstm weights")
    if not isinstance(state, dict) or "token_embedding.weight" not in state:
        raise InputError(f"{weights_path}: not an xLSTMLMModel state dict (no token_embedding.weight)")
    embedding = state["token_embedding.weight"]
    head = output_matrix(state, embedding, bool(config.get("tie_weights")), weights_path)
    slstm = config.get("slstm_block") or {}
    activation = (
        ((slstm.get("feedforward") or {}).get("act_fn") or "gelu") if isinstance(slstm, dict) else "gelu"
    )
    activation = {"swish": "silu"}.get(activation, activation)
    if activation not in ("gelu", "silu"):
        raise InputError(
            f"{config_path}: slstm_block.feedforward.act_fn {activation!r}; biolm has gelu and swish"
        )
    backend = ((slstm.get("slstm") or {}).get("backend") or "cuda") if isinstance(slstm, dict) else "cuda"
    stack = read_stack(
        state, "xlstm_block_stack.", weights_path, ffn_activation=activation, slstm_layout=backend
    )
    for key, actual in (("embedding_dim", embedding.shape[1]), ("num_blocks", stack.settings["n_layers"])):
        if config.get(key) is not None and config[key] != actual:
            raise InputError(f"{config_path}: {key} is {config[key]!r} but the weights have {actual}")
    tokenizer = get_tokenizer(tokenizer_kind)
    if config.get("vocab_size", embedding.shape[0]) != embedding.shape[0]:
        raise InputError(
            f"{config_path}: vocab_size is {config['vocab_size']!r} but the weights have {embedding.shape[0]}"
        )
    if embedding.shape[0] > tokenizer.vocab_size:
        raise InputError(
            f"{weights_path}: {embedding.shape[0]} embedding rows, more than the {tokenizer.vocab_size} "
            f"ids of the {tokenizer_kind} tokenizer"
        )
    mapping: list[int | None] = list(range(embedding.shape[0]))
    return build_model(stack, tokenizer, mapping, embedding, head, weights_path), tokenizer
