"""Prot-xLSTM checkpoints (ml-jku/Prot-xLSTM, `xLSTMLMHeadModel.save_pretrained`): a directory with
`config.json` (the xlstm settings with `position_embeddings`, `rope_base_frequency`) and
`pytorch_model.bin` (a torch-saved state dict, keys `backbone.*`).

The blocks are the xlstm package's mLSTM blocks; with `position_embeddings: rot_1d` q and k are rotated
over the whole inner width before the gates read them (biolm's `rope: inner`), positions restarting for
each member of an in-context prompt. The vocabulary (38 ids) maps onto biolm's protein tokenizer with
five fill-in-the-middle sentinels: `<cls>` is `<bos>`, `<mask-k>` is `<fim_k>`; `.`, `-` and `<null_1>`
have no biolm token and are never predicted.
"""

from __future__ import annotations

import re
from pathlib import Path

from biolm.convert.build import build_model
from biolm.convert.checkpoint import load_torch, read_json
from biolm.convert.vocabulary import id_map, output_matrix
from biolm.convert.xlstm_stack import read_stack
from biolm.data.layout import layout_spec
from biolm.errors import InputError
from biolm.models import BioLM
from biolm.tokenizers import ProteinTokenizer, Tokenizer

NAME = "Prot-xLSTM"
CONFIG = "config.json"
WEIGHTS = "pytorch_model.bin"
# Prot-xLSTM's token ids (protxlstm.utils.AA_TO_ID), in id order.
VOCABULARY = (
    ["<cls>", "<pad>", "<eos>", "<unk>"]
    + list("LAGVSERTIDPKQNFYMHWCXBUZO")
    + [".", "-", "<null_1>", "<mask>"]
    + [f"<mask-{k}>" for k in range(1, 6)]
)
ROPE = {"none": "none", "rot_1d": "inner"}


def detect(source: Path) -> bool:
    if not (source.is_dir() and (source / CONFIG).exists() and (source / WEIGHTS).exists()):
        return False
    try:
        config = read_json(source / CONFIG, "Prot-xLSTM config")
    except InputError:
        return False
    return isinstance(config, dict) and "mlstm_block" in config


def read(source: Path, tokenizer_kind: str | None = None) -> tuple[BioLM, Tokenizer]:
    """The biolm model and tokenizer of a Prot-xLSTM checkpoint directory."""
    config_path, weights_path = source / CONFIG, source / WEIGHTS
    config = read_json(config_path, "Prot-xLSTM config")
    position = config.get("position_embeddings", "none")
    if position not in ROPE:
        raise InputError(
            f"{config_path}: position_embeddings {position!r}; biolm converts {' and '.join(ROPE)} so far"
        )
    if config.get("add_post_blocks_norm") is False:
        raise InputError(f"{config_path}: add_post_blocks_norm false; biolm's models end with a norm")
    state = load_torch(weights_path, "Prot-xLSTM weights")
    if not isinstance(state, dict) or "backbone.token_embedding.weight" not in state:
        raise InputError(f"{weights_path}: not a Prot-xLSTM state dict (no backbone.token_embedding.weight)")
    state = {key.removeprefix("backbone."): value for key, value in state.items()}
    embedding = state["token_embedding.weight"]
    head = output_matrix(state, embedding, bool(config.get("tie_weights")), weights_path)
    if embedding.shape[0] != len(VOCABULARY) or config.get("vocab_size", len(VOCABULARY)) != len(VOCABULARY):
        raise InputError(
            f"{config_path}: a vocabulary of {embedding.shape[0]} ids; Prot-xLSTM's has {len(VOCABULARY)}"
        )
    stack = read_stack(state, "xlstm_block_stack.", weights_path)
    for key, actual in (("embedding_dim", embedding.shape[1]), ("num_blocks", stack.settings["n_layers"])):
        if config.get(key) is not None and config[key] != actual:
            raise InputError(f"{config_path}: {key} is {config[key]!r} but the weights have {actual}")
    stack.settings["rope"] = ROPE[position]
    if position != "none":
        stack.settings["rope_base"] = float(config.get("rope_base_frequency", 10000.0))
    sentinels = sum(1 for token in VOCABULARY if re.fullmatch(r"<mask-\d+>", token))
    tokenizer = ProteinTokenizer(fim_sentinels=sentinels)
    aliases = {"<cls>": "<bos>", **{f"<mask-{k}>": f"<fim_{k}>" for k in range(1, sentinels + 1)}}
    tokenizer.set_aliases(aliases)
    model = build_model(stack, tokenizer, id_map(tokenizer, VOCABULARY), embedding, head, weights_path)
    # Its in-context layout: every member opened by <cls> (biolm's <bos>), positions restarting there.
    # Its ProteinGym FIM target writes <mask-1> in place, then <eos> (position 0) and <mask-1> again.
    model.layout_spec = layout_spec("<cls>", "<cls>", "<eos>", restart_positions=True, fim="in_place")
    return model, tokenizer
