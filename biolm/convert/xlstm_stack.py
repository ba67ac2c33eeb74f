"""The block stack of the `xlstm` package (1.x: `xLSTMBlockStack` inside `xLSTMLMModel`), which
Chem-xLSTM and NX-AI's xlstm 1.x models are made of, read onto biolm's blocks.

An xlstm 1.x mLSTM block is biolm's `m` block parameter for parameter: pre-norm, up-projection to
(x, z), causal convolution, block-diagonal q/k/v, input and forget gates from [q, k, v], per-head norm,
learned skip, output gate silu(z), down-projection. An xlstm sLSTM block is biolm's `s` block: pre-norm,
causal convolution + swish feeding the headwise i and f projections, z and o from the input, the sLSTM
cell (sigmoid forget gate, exponential input gate), per-head norm; then a gated feed-forward (GELU in
xlstm's default). The xlstm norms store an offset: the scale is `1 + weight`.

sLSTM layout details (found against the package): the cell's input gate is fed by the module named
`fgate` and its forget gate by `igate`; the recurrent kernel and bias are stored in the CUDA backend's
layout, which every published model has (`_recurrent_kernel_` [heads, D_in, 4 * D_out] with gates
(i, f, z, o); `_bias_` flat in (head, gate, D) order); the vanilla backend's layout is [heads,
4 * D_out, D_in] and (gate, head, D).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from biolm.errors import InputError

_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.(.+)")
SLSTM_LAYOUTS = ("cuda", "vanilla")

# biolm name <- xlstm name, within an mLSTM block; "+1": the xlstm norm stores scale - 1.
MLSTM_BLOCK = {
    "norm.weight": ("xlstm_norm.weight", "+1"),
    "layer.skip": ("xlstm.learnable_skip", ""),
    "layer.proj_up.weight": ("xlstm.proj_up.weight", ""),
    "layer.q_proj.weight": ("xlstm.q_proj.weight", ""),
    "layer.k_proj.weight": ("xlstm.k_proj.weight", ""),
    "layer.v_proj.weight": ("xlstm.v_proj.weight", ""),
    "layer.conv.weight": ("xlstm.conv1d.conv.weight", ""),
    "layer.conv.bias": ("xlstm.conv1d.conv.bias", ""),
    "layer.igate.weight": ("xlstm.mlstm_cell.igate.weight", ""),
    "layer.igate.bias": ("xlstm.mlstm_cell.igate.bias", ""),
    "layer.fgate.weight": ("xlstm.mlstm_cell.fgate.weight", ""),
    "layer.fgate.bias": ("xlstm.mlstm_cell.fgate.bias", ""),
    "layer.norm.weight": ("xlstm.mlstm_cell.outnorm.weight", "+1"),
    "layer.proj_down.weight": ("xlstm.proj_down.weight", ""),
}
# The projection biases of an mLSTM block with `bias: true` (DNA-xLSTM's m_bias): biolm's
# `projection_bias`.
MLSTM_BIASES = {
    f"layer.{name}.bias": (f"xlstm.{name}.bias", "")
    for name in ("proj_up", "q_proj", "k_proj", "v_proj", "proj_down")
}
# The parameters of an xlstm sLSTM block (the gates and the cell are rearranged in `_slstm_weights`).
SLSTM_BLOCK_KEYS = {
    "xlstm_norm.weight",
    "xlstm.conv1d.conv.weight",
    "xlstm.conv1d.conv.bias",
    "xlstm.fgate.weight",
    "xlstm.igate.weight",
    "xlstm.zgate.weight",
    "xlstm.ogate.weight",
    "xlstm.slstm_cell._recurrent_kernel_",
    "xlstm.slstm_cell._bias_",
    "xlstm.group_norm.weight",
    "ffn_norm.weight",
    "ffn.proj_up.weight",
    "ffn.proj_down.weight",
}


@dataclass
class Stack:
    """An xlstm block stack read onto biolm's blocks.

    Attributes:
        weights: biolm parameter name -> tensor, for the blocks and the final norm.
        settings: the `ModelConfig` settings the weights imply (d_model, n_layers, pattern, heads, ...).
    """

    weights: dict[str, torch.Tensor]
    settings: dict


def read_stack(
    state: dict[str, torch.Tensor],
    prefix: str,
    source: Path,
    *,
    ffn_activation: str = "gelu",
    slstm_layout: str = "cuda",
) -> Stack:
    """The blocks under `prefix` (e.g. "xlstm_block_stack.") and the stack's final norm.

    Args:
        ffn_activation: the gate activation of the sLSTM blocks' feed-forward ("gelu" or "silu").
        slstm_layout: how the sLSTM cells' parameters are stored ("cuda" or "vanilla").

    Raises:
        InputError: a block biolm cannot represent (projection biases, blocks of unequal shapes or head
            counts), a missing or unexpected parameter, naming the file and the key.
    """
    blocks: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if not key.startswith(prefix + "blocks."):
            continue
        found = _BLOCK_KEY.fullmatch(key[len(prefix) :])
        if found is None:
            raise InputError(f"{source}: unexpected parameter {key!r}")
        blocks.setdefault(int(found.group(1)), {})[found.group(2)] = value
    if not blocks or sorted(blocks) != list(range(len(blocks))):
        raise InputError(f"{source}: no blocks numbered 0..n-1 under {prefix}blocks")
    weights: dict[str, torch.Tensor] = {}
    pattern, heads, ffn_dims, biases = "", set(), set(), set()
    for index in range(len(blocks)):
        params = {name: value.float() for name, value in blocks[index].items()}
        where = f"{prefix}blocks.{index}."
        if any(".slstm_cell." in name for name in params):
            _check_keys(params, SLSTM_BLOCK_KEYS, where, source, "sLSTM")
            block, head_count = _slstm_weights(params, slstm_layout, where, source)
            pattern += "s"
            ffn_dims.add(block["ffn.proj_down.weight"].shape[1])
        else:
            names = dict(MLSTM_BLOCK)
            has_bias = any(ref in params for ref, _ in MLSTM_BIASES.values())
            if has_bias:
                names.update(MLSTM_BIASES)
            biases.add(has_bias)
            _check_keys(params, {ref for ref, _ in names.values()}, where, source, "mLSTM")
            block = {
                name: params[ref] + 1 if op == "+1" else params[ref] for name, (ref, op) in names.items()
            }
            head_count = block["layer.igate.weight"].shape[0]
            pattern += "m"
        heads.add(head_count)
        weights.update({f"blocks.{index}.{name}": value for name, value in block.items()})
    if len(biases) > 1:
        raise InputError(f"{source}: mLSTM blocks with and without projection biases; biolm's share one")
    if len(heads) > 1:
        raise InputError(f"{source}: blocks with {sorted(heads)} heads; biolm's blocks share one head count")
    final = state.get(prefix + "post_blocks_norm.weight")
    if final is None:
        raise InputError(f"{source}: missing parameter {prefix}post_blocks_norm.weight")
    weights["final_norm.weight"] = final.float() + 1
    d_model = weights["blocks.0.norm.weight"].shape[0]
    settings = {
        "d_model": d_model,
        "n_layers": len(blocks),
        "pattern": pattern if len(set(pattern)) > 1 else pattern[0],
        "num_heads": heads.pop(),
        "norm_eps": 1e-5,  # the xlstm package's LayerNorm and MultiHeadLayerNorm
        "tie_embeddings": False,
        "projection_bias": biases == {True},
    }
    first_m = next((i for i, letter in enumerate(pattern) if letter == "m"), None)
    if first_m is not None:
        inner = weights[f"blocks.{first_m}.layer.proj_down.weight"].shape[1]
        settings["proj_factor"] = inner / d_model
        settings["qkv_block_size"] = weights[f"blocks.{first_m}.layer.q_proj.weight"].shape[-1]
        settings["conv_kernel"] = weights[f"blocks.{first_m}.layer.conv.weight"].shape[-1]
    if ffn_dims:
        if len(ffn_dims) > 1:
            raise InputError(f"{source}: sLSTM feed-forwards of widths {sorted(ffn_dims)}; biolm's share one")
        settings["ffn_factor"] = ffn_dims.pop() / d_model
        settings["ffn_multiple"] = 1  # the checkpoint's width as it is
        settings["ffn_activation"] = ffn_activation
        kernels = {
            weights[f"blocks.{i}.mixer.conv.weight"].shape[-1] for i, c in enumerate(pattern) if c == "s"
        }
        if settings.setdefault("conv_kernel", kernels.pop()) != settings["conv_kernel"] or kernels:
            raise InputError(f"{source}: mLSTM and sLSTM convolutions of different widths; biolm's share one")
    return Stack(weights, settings)


def _check_keys(params: dict, expected: set[str], where: str, source: Path, kind: str) -> None:
    unexpected = sorted(set(params) - expected)
    if unexpected:
        bias = any(name.endswith(".bias") for name in unexpected)
        what = "a projection bias (bias: true)" if bias else "a parameter"
        raise InputError(f"{source}: {what} biolm's {kind} block does not have: {where}{unexpected[0]}")
    missing = sorted(expected - set(params))
    if missing:
        raise InputError(f"{source}: missing parameter {where}{missing[0]}")


def _slstm_weights(params: dict, layout: str, where: str, source: Path) -> tuple[dict, int]:
    """biolm's `s` block parameters of an xlstm sLSTM block, and its head count."""
    if layout not in SLSTM_LAYOUTS:
        raise InputError(f"{source}: sLSTM backend {layout!r}; biolm reads the layouts of {SLSTM_LAYOUTS}")
    gates = {name: params[f"xlstm.{name}.weight"] for name in ("igate", "fgate", "zgate", "ogate")}
    heads, dh, _ = gates["igate"].shape  # headwise [heads, D_out, D_in]
    kernel, bias = params["xlstm.slstm_cell._recurrent_kernel_"], params["xlstm.slstm_cell._bias_"]
    if layout == "cuda":
        expected_kernel = (heads, dh, 4 * dh)
        recurrent = kernel.reshape(heads, dh, 4, dh)  # [head, D_in, gate, D_out]
        bias = bias.reshape(heads, 4, dh)
    else:
        expected_kernel = (heads, 4 * dh, dh)
        recurrent = kernel.reshape(heads, 4, dh, dh).permute(0, 3, 1, 2)
        bias = bias.reshape(4, heads, dh).permute(1, 0, 2)
    if tuple(kernel.shape) != expected_kernel:
        raise InputError(
            f"{source}: {where}xlstm.slstm_cell._recurrent_kernel_ has shape {tuple(kernel.shape)}, not the "
            f"{layout} layout's {expected_kernel}"
        )

    def headwise(name: str) -> torch.Tensor:  # xlstm [head, out, in] -> biolm [head, in, out]
        return gates[name].transpose(1, 2)

    block = {
        "norm.weight": params["xlstm_norm.weight"] + 1,
        "mixer.conv.weight": params["xlstm.conv1d.conv.weight"],
        "mixer.conv.bias": params["xlstm.conv1d.conv.bias"],
        # The cell's input gate reads the module named fgate, its forget gate the one named igate.
        "mixer.w_if": torch.stack([headwise("fgate"), headwise("igate")], dim=1),
        "mixer.w_zo": torch.stack([headwise("zgate"), headwise("ogate")], dim=1),
        "mixer.R": recurrent.permute(0, 2, 1, 3).contiguous(),  # [head, gate, D_in, D_out]
        "mixer.bias": bias.contiguous(),
        "mixer.norm.weight": params["xlstm.group_norm.weight"] + 1,
        "ffn_norm.weight": params["ffn_norm.weight"] + 1,
        "ffn.proj_up.weight": params["ffn.proj_up.weight"],
        "ffn.proj_down.weight": params["ffn.proj_down.weight"],
    }
    return block, heads
