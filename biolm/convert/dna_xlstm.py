"""DNA-xLSTM checkpoints (ml-jku/DNA-xLSTM): a run directory with `model_config.json` (their
`xLSTMConfig` settings) and a Lightning checkpoint under `checkpoints/` (keys `model.backbone.*`;
`hyper_parameters` is a pickled OmegaConf config, read as data through an allowlist).

Their blocks are the xlstm package's, with options biolm's blocks take: projection biases (`m_bias`:
`projection_bias`), RoPE per head with the gates reading the unrotated q, k, v and theta 5e5
(`m_position_embeddings`: `rope: head`), sLSTM feed-forwards of GELU with a width rounded down to a
multiple of 8 (kept as it is), and bidirectionality of whole blocks (`bidirectional`:
`bidirectional_scope: block`, `x = block(x) + flip(block(flip(x)))`). The CaduceusTokenizer's 12 ids map
onto biolm's DNA tokenizer by role ([SEP] is <eos>, [BOS] <bos>, [MASK] <mask>, [PAD] <pad>, [UNK] <unk>);
[CLS] and [RESERVED] have no biolm token and are never predicted.

Refused, with the reason: `rcps` (PS) models. In the reference the reverse-complement strand's heads
reach the group norm in reversed order, so with more than one head its PS models are not
RC-equivariant; biolm's `rc_equivariant` is, and reproducing the reference would mean building a model
that only claims the property. `bidirectional_alternating` is not converted yet.
"""

from __future__ import annotations

import collections
import typing
from pathlib import Path

from biolm.convert.build import build_model
from biolm.convert.checkpoint import load_torch, read_json
from biolm.convert.vocabulary import id_map, output_matrix
from biolm.convert.xlstm_stack import read_stack
from biolm.errors import InputError
from biolm.models import BioLM
from biolm.tokenizers import DNATokenizer, Tokenizer

NAME = "DNA-xLSTM"
CONFIG = "model_config.json"
VOCABULARY = ["[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]", "A", "C", "G", "T", "N"]
ROLES = {"[SEP]": "<eos>", "[BOS]": "<bos>", "[MASK]": "<mask>", "[PAD]": "<pad>", "[UNK]": "<unk>"}
ROPE_BASE = 500000.0  # their precompute_freqs_cis default, which their stack uses


def detect(source: Path) -> bool:
    return _config_path(source) is not None and _checkpoint(source, quiet=True) is not None


def _config_path(source: Path) -> Path | None:
    """`model_config.json` of the run: in `source`, or above a `.ckpt` file given directly."""
    for folder in [source, *source.parents] if source.is_file() else [source]:
        if (folder / CONFIG).is_file():
            return folder / CONFIG
    return None


def _checkpoint(source: Path, quiet: bool = False) -> Path | None:
    if source.is_file():
        return source if source.suffix == ".ckpt" else None
    found = sorted((source / "checkpoints").rglob("*.ckpt")) if (source / "checkpoints").is_dir() else []
    if len(found) > 1 and not quiet:
        names = ", ".join(str(p.relative_to(source)) for p in found[:4])
        raise InputError(f"{source}: several checkpoints ({names}); give the .ckpt file to convert")
    return found[0] if found else None


def _omegaconf_types() -> list:
    """The classes of a pickled OmegaConf config, read as data."""
    from omegaconf import DictConfig, ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode

    return [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode, typing.Any, collections.defaultdict]


def read(source: Path, tokenizer_kind: str | None = None) -> tuple[BioLM, Tokenizer]:
    """The biolm model and tokenizer of a DNA-xLSTM run directory (or one of its `.ckpt` files)."""
    config_path, checkpoint_path = _config_path(source), _checkpoint(source)
    if config_path is None or checkpoint_path is None:
        raise InputError(f"{source}: a DNA-xLSTM run needs {CONFIG} and a checkpoints/**/*.ckpt")
    settings = read_json(config_path, "DNA-xLSTM config")
    config = settings.get("config") if isinstance(settings, dict) else None
    if not isinstance(config, dict):
        raise InputError(f"{config_path}: no 'config' mapping of xLSTMConfig settings")
    if config.get("rcps"):
        raise InputError(
            f"{config_path}: rcps true: the reference's PS models are not reverse-complement equivariant "
            "with more than one head (the RC strand's heads are reordered); biolm does not convert them"
        )
    if config.get("bidirectional_alternating"):
        raise InputError(f"{config_path}: bidirectional_alternating is not converted yet")
    checkpoint = load_torch(checkpoint_path, "Lightning checkpoint", [*_omegaconf_types(), dict, list, int])
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or "model.backbone.token_embedding.weight" not in state:
        raise InputError(f"{checkpoint_path}: no state_dict with model.backbone.token_embedding.weight")
    state = {key.removeprefix("model.backbone."): value for key, value in state.items()}
    embedding = state["token_embedding.weight"]
    head = output_matrix(state, embedding, bool(config.get("tie_weights")), checkpoint_path)
    if embedding.shape[0] != len(VOCABULARY):
        raise InputError(
            f"{checkpoint_path}: {embedding.shape[0]} embedding rows; DNA-xLSTM's vocabulary has 12"
        )
    stack = read_stack(
        state, "xlstm_block_stack.", checkpoint_path, ffn_activation="gelu", slstm_layout="cuda"
    )
    for key, actual in (("d_model", embedding.shape[1]), ("n_layer", stack.settings["n_layers"])):
        if config.get(key) is not None and config[key] != actual:
            raise InputError(f"{config_path}: {key} is {config[key]!r} but the weights have {actual}")
    if config.get("m_bias", False) != stack.settings["projection_bias"]:
        raise InputError(f"{config_path}: m_bias is {config.get('m_bias')!r} but the weights say otherwise")
    if config.get("s_position_embeddings"):
        raise InputError(f"{config_path}: s_position_embeddings true is not converted yet")
    if config.get("m_position_embeddings"):
        stack.settings.update(rope="head", rope_base=ROPE_BASE)
    if config.get("bidirectional"):
        stack.settings.update(bidirectional=True, bidirectional_scope="block")
    tokenizer = DNATokenizer()
    tokenizer.set_aliases(ROLES)
    model = build_model(stack, tokenizer, id_map(tokenizer, VOCABULARY), embedding, head, checkpoint_path)
    return model, tokenizer
