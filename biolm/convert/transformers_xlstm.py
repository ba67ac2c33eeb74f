"""transformers' xLSTM (`xLSTMForCausalLM`, NX-AI/xLSTM-7b): a `save_pretrained` directory with
`config.json` (`model_type: xlstm`) and `model.safetensors` (or shards listed in
`model.safetensors.index.json`), usually with a transformers `tokenizer.json`.

Its blocks are biolm's `x` block (the xlstm package's `xLSTMLarge` design) with `weight_mode: single`:
RMS pre-norms, q/k/v/output-gate/input-gate/forget-gate projections of the normed input, soft-capped
gates, a per-head norm and an output projection; then an RMS-normed SwiGLU (`proj_up_gate` and
`proj_up` kept apart, biolm's fused weight takes the gate rows first). The model ends in an RMSNorm
and soft-caps the logits (`final_norm: rms`, `logit_soft_cap`).

The vocabulary: ids are matched to the biolm tokenizer (`--tokenizer`, or the one whose tokens the
checkpoint's WordLevel `tokenizer.json` lists) by their strings.
"""

from __future__ import annotations

from pathlib import Path

import torch

from biolm.convert.build import build_model
from biolm.convert.checkpoint import read_json
from biolm.convert.vocabulary import id_map
from biolm.convert.xlstm_stack import Stack
from biolm.errors import ArgumentError, InputError
from biolm.io.files import regular_file
from biolm.models import BioLM
from biolm.tokenizers import Tokenizer, get_tokenizer

NAME = "transformers xLSTM"
CONFIG = "config.json"
# biolm name <- transformers name, within a block ("ffn.proj_up.weight" is assembled from two).
X_BLOCK = {
    "norm.weight": "norm_mlstm.weight",
    "ffn_norm.weight": "norm_ffn.weight",
    "ffn.proj_down.weight": "ffn.proj_down.weight",
    "mixer.q.weight": "mlstm_layer.q.weight",
    "mixer.k.weight": "mlstm_layer.k.weight",
    "mixer.v.weight": "mlstm_layer.v.weight",
    "mixer.ogate.weight": "mlstm_layer.ogate_preact.weight",
    "mixer.igate.weight": "mlstm_layer.igate_preact.weight",
    "mixer.igate.bias": "mlstm_layer.igate_preact.bias",
    "mixer.fgate.weight": "mlstm_layer.fgate_preact.weight",
    "mixer.fgate.bias": "mlstm_layer.fgate_preact.bias",
    "mixer.norm.weight": "mlstm_layer.multihead_norm.weight",
    "mixer.out_proj.weight": "mlstm_layer.out_proj.weight",
}
_FFN_UP = ("ffn.proj_up_gate.weight", "ffn.proj_up.weight")


def detect(source: Path) -> bool:
    if not (source.is_dir() and (source / CONFIG).exists()):
        return False
    if not ((source / "model.safetensors").exists() or (source / "model.safetensors.index.json").exists()):
        return False
    try:
        config = read_json(source / CONFIG, "transformers config")
    except InputError:
        return False
    return isinstance(config, dict) and config.get("model_type") == "xlstm"


def read(source: Path, tokenizer_kind: str | None = None) -> tuple[BioLM, Tokenizer]:
    """The biolm model and tokenizer of a transformers xLSTM directory."""
    config_path = source / CONFIG
    config = read_json(config_path, "transformers config")
    _check_representable(config, config_path)
    state = _load_weights(source)
    d = _setting(config, config_path, "hidden_size", "embedding_dim")
    heads = _setting(config, config_path, "num_heads")
    layers = _setting(config, config_path, "num_hidden_layers", "num_blocks")
    weights: dict[str, torch.Tensor] = {}
    for index in range(layers):
        prefix = f"backbone.blocks.{index}."
        for name, ref in X_BLOCK.items():
            weights[f"blocks.{index}.{name}"] = _take(state, prefix + ref, source)
        gate, up = (_take(state, prefix + name, source) for name in _FFN_UP)
        weights[f"blocks.{index}.ffn.proj_up.weight"] = torch.cat([gate, up])
    weights["final_norm.weight"] = _take(state, "backbone.out_norm.weight", source)
    embedding = _take(state, "backbone.embeddings.weight", source)
    head = embedding if config.get("tie_word_embeddings") else _take(state, "lm_head.weight", source)
    leftover = sorted(set(state) - _used_keys(layers, config))
    if leftover:
        raise InputError(f"{source}: a parameter biolm's x block does not have: {leftover[0]}")
    ffn = weights["blocks.0.ffn.proj_down.weight"].shape[1]
    settings = {
        "d_model": d,
        "n_layers": layers,
        "pattern": "x",
        "num_heads": heads,
        "qk_dim_factor": float(config.get("qk_dim_factor", 0.5)),
        "v_dim_factor": float(config.get("v_dim_factor", 1.0)),
        "ffn_factor": ffn / d,
        "ffn_multiple": 1,  # the checkpoint's width as it is
        "gate_soft_cap": float(config.get("gate_soft_cap") or 0.0),
        "logit_soft_cap": float(config.get("output_logit_soft_cap") or 0.0),
        "final_norm": "rms",
        "norm_eps": float(config.get("norm_eps", config.get("eps", 1e-6))),
        "chunk_size": int(config.get("chunk_size", 64)),
        "tie_embeddings": False,
    }
    tokenizer, reference = _vocabulary(source, tokenizer_kind, embedding.shape[0])
    mapping = id_map(tokenizer, reference) if reference is not None else list(range(embedding.shape[0]))
    model = build_model(Stack(weights, settings), tokenizer, mapping, embedding, head, source / CONFIG)
    return model, tokenizer


def _check_representable(config: dict, path: Path) -> None:
    for key, wanted in (("use_bias", False), ("weight_mode", "single"), ("add_out_norm", True)):
        if config.get(key, wanted) != wanted:
            raise InputError(f"{path}: {key} {config[key]!r}; biolm converts {key} {wanted!r} only")
    if config.get("norm_reduction_force_float32") is False:
        raise InputError(f"{path}: norm_reduction_force_float32 false; biolm's norms reduce in float32")


def _setting(config: dict, path: Path, *keys: str) -> int:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    raise InputError(f"{path}: no positive integer {' or '.join(keys)}")


def _take(state: dict, key: str, source: Path) -> torch.Tensor:
    if key not in state:
        raise InputError(f"{source}: missing parameter {key}")
    return state[key].float()


def _used_keys(layers: int, config: dict) -> set[str]:
    keys = {"backbone.out_norm.weight", "backbone.embeddings.weight"}
    if not config.get("tie_word_embeddings"):
        keys.add("lm_head.weight")
    for index in range(layers):
        prefix = f"backbone.blocks.{index}."
        keys |= {prefix + ref for ref in X_BLOCK.values()} | {prefix + name for name in _FFN_UP}
    return keys


def _load_weights(source: Path) -> dict[str, torch.Tensor]:
    """Every tensor of `model.safetensors`, or of the shards its index lists (safetensors holds data
    only: nothing to unpickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    single = source / "model.safetensors"
    if single.exists():
        files = [single]
    else:
        index_path = source / "model.safetensors.index.json"
        index = read_json(index_path, "safetensors index")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise InputError(f"{index_path}: no 'weight_map' of tensor names to shard files")
        files = [source / name for name in sorted(set(weight_map.values()))]
        if any(Path(name).name != name for name in weight_map.values()):
            raise InputError(f"{index_path}: a shard outside the checkpoint directory")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        regular_file(file, "weights")
        try:
            state.update(load_file(file))
        except (SafetensorError, OSError, ValueError) as err:
            raise InputError(f"{file}: not a readable safetensors file ({err})") from None
    return state


def _vocabulary(source: Path, kind: str | None, slots: int) -> tuple[Tokenizer, list[str | None] | None]:
    """The biolm tokenizer, and the checkpoint's token of each id when its `tokenizer.json` has a
    WordLevel vocabulary (None: its ids are the tokenizer's own)."""
    reference = None
    path = source / "tokenizer.json"
    if path.exists():
        data = read_json(path, "transformers tokenizer")
        model = data.get("model") if isinstance(data, dict) else None
        vocab = model.get("vocab") if isinstance(model, dict) and model.get("type") == "WordLevel" else None
        if isinstance(vocab, dict):
            reference = [None] * slots
            for token, index in vocab.items():
                if isinstance(index, int) and 0 <= index < slots:
                    reference[index] = token
    if kind is None and reference is not None:
        # The biolm tokenizer whose tokens the checkpoint's vocabulary lists, if one does.
        for name in ("dna", "protein", "smiles"):
            tokens = get_tokenizer(name).tokens
            if reference[: len(tokens)] == tokens:
                kind = name
                break
    if kind is None:
        raise ArgumentError(
            f"{source}: its tokenizer is not one of biolm's; name the biolm tokenizer its ids are with "
            "{tokenizer} (dna, protein or smiles)",
            "tokenizer",
        )
    return get_tokenizer(kind), reference
