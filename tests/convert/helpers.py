"""Checkpoints in the published formats, written here from random tensors with the formats' key names
and files (no reference code): for the converter's tests that need no reference logits."""

from __future__ import annotations

import json
from pathlib import Path

import torch

# A Chem-xLSTM-style learned vocabulary: [PAD] first, then tokens in first-seen order.
CHEM_TOKENS = [
    "[PAD]",
    "[BEG]",
    "C",
    "(",
    "=",
    "O",
    ")",
    "[",
    "@",
    "H",
    "]",
    "N",
    "1",
    "c",
    "+",
    "3",
    "[END]",
]


def mlstm_block(prefix: str, d: int, heads: int, inner: int, block: int = 4, kernel: int = 4) -> dict:
    """The parameters of one xlstm 1.x mLSTM block under `prefix` (random)."""
    g = torch.Generator().manual_seed(len(prefix))

    def rand(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    p = prefix
    return {
        f"{p}xlstm_norm.weight": rand(d),
        f"{p}xlstm.learnable_skip": rand(inner),
        f"{p}xlstm.proj_up.weight": rand(2 * inner, d),
        f"{p}xlstm.q_proj.weight": rand(inner // block, block, block),
        f"{p}xlstm.k_proj.weight": rand(inner // block, block, block),
        f"{p}xlstm.v_proj.weight": rand(inner // block, block, block),
        f"{p}xlstm.conv1d.conv.weight": rand(inner, 1, kernel),
        f"{p}xlstm.conv1d.conv.bias": rand(inner),
        f"{p}xlstm.mlstm_cell.igate.weight": rand(heads, 3 * inner),
        f"{p}xlstm.mlstm_cell.igate.bias": rand(heads),
        f"{p}xlstm.mlstm_cell.fgate.weight": rand(heads, 3 * inner),
        f"{p}xlstm.mlstm_cell.fgate.bias": rand(heads) + 3,
        f"{p}xlstm.mlstm_cell.outnorm.weight": rand(inner),
        f"{p}xlstm.proj_down.weight": rand(d, inner),
    }


def write_chem_checkpoint(
    path: Path, *, d: int = 16, layers: int = 2, heads: int = 2, tokens: list[str] = CHEM_TOKENS, **overrides
) -> Path:
    """A Chem-xLSTM checkpoint directory (init_arguments.json + model.pt) of a random mLSTM stack."""
    path.mkdir(parents=True, exist_ok=True)
    slots = len(tokens) + 1  # one slot no token uses, as in their published vocabularies
    state = {}
    for i in range(layers):
        state.update(mlstm_block(f"model.xlstm_block_stack.blocks.{i}.", d, heads, 2 * d))
    state["model.xlstm_block_stack.post_blocks_norm.weight"] = torch.randn(d) * 0.1
    state["model.token_embedding.weight"] = torch.randn(slots, d)
    state["model.lm_head.weight"] = torch.randn(slots, d) * 0.3
    torch.save(state, path / "model.pt")
    arguments = {
        "mode": "smiles",
        "model_dim": d,
        "n_layers": layers,
        "n_heads": 1,  # what their save() writes whatever the model has
        "vocab_size": slots,
        "token2label": {t: i for i, t in enumerate(tokens)},
        "label2token": {str(i): t for i, t in enumerate(tokens)},
    }
    arguments.update(overrides)
    (path / "init_arguments.json").write_text(json.dumps(arguments))
    return path


def slstm_block(prefix: str, d: int, heads: int, ffn: int, kernel: int = 4, layout: str = "cuda") -> dict:
    """The parameters of one xlstm 1.x sLSTM block under `prefix` (random), its cell in `layout`."""
    g = torch.Generator().manual_seed(len(prefix) + 7)

    def rand(*shape):
        return torch.randn(*shape, generator=g) * 0.3

    dh = d // heads
    recurrent = rand(heads, dh, 4, dh)  # [head, D_in, gate, D_out]
    bias = rand(heads, 4, dh)
    if layout == "cuda":
        kernel_stored, bias_stored = recurrent.reshape(heads, dh, 4 * dh), bias.reshape(-1)
    else:  # the vanilla backend's layout
        kernel_stored = recurrent.permute(0, 2, 3, 1).reshape(heads, 4 * dh, dh)
        bias_stored = bias.permute(1, 0, 2).reshape(-1)
    p = prefix
    return {
        f"{p}xlstm_norm.weight": rand(d),
        f"{p}xlstm.conv1d.conv.weight": rand(d, 1, kernel),
        f"{p}xlstm.conv1d.conv.bias": rand(d),
        **{f"{p}xlstm.{name}.weight": rand(heads, dh, dh) for name in ("fgate", "igate", "zgate", "ogate")},
        f"{p}xlstm.slstm_cell._recurrent_kernel_": kernel_stored,
        f"{p}xlstm.slstm_cell._bias_": bias_stored,
        f"{p}xlstm.group_norm.weight": rand(d),
        f"{p}ffn_norm.weight": rand(d),
        f"{p}ffn.proj_up.weight": rand(2 * ffn, d),
        f"{p}ffn.proj_down.weight": rand(d, ffn),
    }


def write_transformers_checkpoint(
    path: Path, *, d: int = 32, heads: int = 2, layers: int = 2, vocab=None, shards: int = 1, **config
) -> Path:
    """A transformers xLSTM `save_pretrained`-style directory (config.json, safetensors, optionally
    sharded with an index, a WordLevel tokenizer.json) of random weights."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(3)

    def rand(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    ffn, qk = 64, d // 2
    state = {
        "backbone.embeddings.weight": rand(31, d),
        "backbone.out_norm.weight": 1 + rand(d),
        "lm_head.weight": rand(31, d),
    }
    for i in range(layers):
        p = f"backbone.blocks.{i}."
        state.update(
            {
                p + "norm_mlstm.weight": 1 + rand(d),
                p + "norm_ffn.weight": 1 + rand(d),
                p + "ffn.proj_up_gate.weight": rand(ffn, d),
                p + "ffn.proj_up.weight": rand(ffn, d),
                p + "ffn.proj_down.weight": rand(d, ffn),
                p + "mlstm_layer.q.weight": rand(qk, d),
                p + "mlstm_layer.k.weight": rand(qk, d),
                p + "mlstm_layer.v.weight": rand(d, d),
                p + "mlstm_layer.ogate_preact.weight": rand(d, d),
                p + "mlstm_layer.igate_preact.weight": rand(heads, d),
                p + "mlstm_layer.igate_preact.bias": rand(heads),
                p + "mlstm_layer.fgate_preact.weight": rand(heads, d),
                p + "mlstm_layer.fgate_preact.bias": 3 + rand(heads),
                p + "mlstm_layer.multihead_norm.weight": 1 + rand(d),
                p + "mlstm_layer.out_proj.weight": rand(d, d),
            }
        )
    settings = {
        "model_type": "xlstm",
        "hidden_size": d,
        "num_heads": heads,
        "num_hidden_layers": layers,
        "qk_dim_factor": 0.5,
        "v_dim_factor": 1.0,
        "gate_soft_cap": 15.0,
        "output_logit_soft_cap": 30.0,
        "norm_eps": 1e-6,
        "use_bias": False,
        "weight_mode": "single",
        "add_out_norm": True,
        "tie_word_embeddings": False,
        "vocab_size": 31,
    }
    settings.update(config)
    (path / "config.json").write_text(json.dumps(settings))
    names = sorted(state)
    if shards == 1:
        save_file(state, path / "model.safetensors")
    else:
        weight_map = {}
        for s in range(shards):
            part = names[s::shards]
            file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            save_file({n: state[n].contiguous() for n in part}, path / file)
            weight_map.update(dict.fromkeys(part, file))
        (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    if vocab is not None:
        tokenizer = {"model": {"type": "WordLevel", "vocab": {t: i for i, t in enumerate(vocab)}}}
        (path / "tokenizer.json").write_text(json.dumps(tokenizer))
    return path
