"""Model configuration: one dataclass describes every biolm backbone."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from biolm.errors import ConfigError

# Block types that exist today; the letters follow DESIGN.md.
AVAILABLE_BLOCKS = {
    "m": "mLSTM",
    "s": "sLSTM",
    "a": "gated linear attention",
    "t": "softmax attention",
    "x": "xLSTM-7B mLSTM (mLSTM at d_model + SwiGLU)",
}
# Blocks that split d_model itself into heads of even width (RoPE rotates pairs of head channels).
_SPLIT_D_MODEL = {"s", "a", "t"}
KERNEL_BACKENDS = ("auto", "torch", "triton", "reference")
FFN_ACTIVATIONS = ("silu", "gelu")
FINAL_NORMS = ("layer", "rms")
ROPE_MODES = ("none", "inner", "head")
BIDIRECTIONAL_SCOPES = ("mixer", "block")
# Settings that take one of a few values, and soft caps (0: none).
_CHOICES = {
    "backend": KERNEL_BACKENDS,
    "ffn_activation": FFN_ACTIVATIONS,
    "final_norm": FINAL_NORMS,
    "rope": ROPE_MODES,
    "bidirectional_scope": BIDIRECTIONAL_SCOPES,
}
_CAPS = ("gate_soft_cap", "logit_soft_cap")
# Settings that count something, so are at least 1 (a chunk_size of 0 would fail only in the kernels).
_COUNTS = (
    "vocab_size",
    "d_model",
    "n_layers",
    "num_heads",
    "qkv_block_size",
    "conv_kernel",
    "chunk_size",
    "ffn_multiple",
)
# Floats every norm and gate is computed in (bfloat16 has the same range): an epsilon or a cap outside
# [_FLOAT32_TINY, _FLOAT32_MAX] becomes 0 or inf there, and the norm of a constant row (x / sqrt(0 + 0)),
# or every capped gate (inf * tanh(x / inf) = inf * 0), NaN.
_FLOAT32_TINY = 1.1754943508222875e-38  # the smallest normal float32
_FLOAT32_MAX = 3.4028234663852886e38
# Width factors: a NaN or infinite one has no width (int(round(nan * d_model)) fails deep in a block).
_FACTORS = ("ffn_factor", "proj_factor", "qk_dim_factor", "v_dim_factor")
# Complement of each id of the DNA tokenizer: specials 0-5 and N (10) map to themselves, A C G T = 6..9.
DNA_COMPLEMENT = [0, 1, 2, 3, 4, 5, 9, 8, 7, 6, 10]


@dataclass
class ModelConfig:
    """Hyper-parameters of a `BioLM` backbone.

    Attributes:
        vocab_size: number of token ids (taken from the tokenizer when training).
        d_model: width of the residual stream.
        n_layers: number of blocks.
        pattern: block types, one letter per block, or one letter repeated for every block.
        num_heads: heads of each mLSTM layer.
        proj_factor: the mLSTM layer works at width `proj_factor * d_model` (pre-up-projection).
        qkv_block_size: q, k and v are block-diagonal projections with blocks of this size, as in
            the xLSTM paper; this keeps the layer's parameter count close to the reference models.
        conv_kernel: width of the causal depthwise convolution in front of q and k (1 disables it).
        ffn_factor: the gated feed-forward of the s, a, t and x blocks has width `ffn_factor * d_model`,
            rounded up to a multiple of `ffn_multiple` (xLSTM paper: 4/3 for sLSTM blocks; xLSTM-7B: 8/3).
        chunk_size: chunk length of the chunkwise mLSTM and linear-attention kernels.
        backend: kernel backend, "auto" | "torch" | "triton" | "reference".
        tie_embeddings: share the input embedding with the output projection.
        dropout: dropout on each block's output.
        norm_eps: epsilon of every normalisation layer.
        bidirectional: every block mixes positions with a forward pass and a pass over the flipped
            sequence (same weights), summed; each position sees the whole sequence, in linear time.
            For masked-language modelling; such a model has no recurrent state across calls.
        rc_equivariant: reverse-complement equivariance by parameter sharing (Caduceus RCPS): the
            residual stream's two halves (each `d_model / 2` wide) run the same blocks over the
            sequence and over its reverse complement, so `model(RC(ids))` is `RC(model(ids))`. The
            reverse-complement half reads the sequence from the other end, i.e. it sees the future:
            train it with the masked objective (usually with `bidirectional`), never as a causal LM.
            Needs `complement`; has no recurrent state across calls.
        qk_dim_factor: x blocks: q and k are `qk_dim_factor * d_model` wide over all heads (xLSTM-7B: 0.5).
        v_dim_factor: x blocks: v (and the mLSTM output) is `v_dim_factor * d_model` wide (xLSTM-7B: 1).
        gate_soft_cap: x blocks: input and forget gate pre-activations pass through
            `cap * tanh(x / cap)` (xLSTM-7B: 15); 0 disables the cap.
        complement: the token id of each id's complement, a permutation of `range(vocab_size)` that is
            its own inverse (specials map to themselves). For the DNA tokenizer it is
            `DNATokenizer().complement_table.tolist()`, i.e. `DNA_COMPLEMENT`. Used by
            `rc_equivariant` and, when set, as the default of `biolm.models.rc.conjoin`.
        ffn_activation: the gate activation of the gated feed-forward: "silu" (SwiGLU, biolm's
            default) or "gelu" (exact, erf-based: the xlstm package's sLSTM blocks).
        rope: rotary position embedding inside the `m` blocks: "none" (biolm's default: the recurrence
            orders positions) or "inner" (Prot-xLSTM's `rot_1d`: q and k rotated after their
            projections, over the whole inner width, adjacent channel pairs, before the gates read
            them) or "head" (DNA-xLSTM: q and k rotated per head, adjacent channel pairs of each head,
            after the gates have read the unrotated q, k, v). Positions are `position_ids` (e.g.
            restarting per member), else 0, 1, 2, ... continuing from the state.
        bidirectional_scope: with `bidirectional`, what runs over both directions: "mixer" (biolm's
            default: only each block's sequence mixer, `biolm.models.bidirectional`) or "block" (the
            whole block, residual and feed-forward included, `block(x) + flip(block(flip(x)))`, as
            DNA-xLSTM does).
        ffn_multiple: the feed-forward width `ffn_factor * d_model` is rounded up to a multiple of this
            (64; DNA-xLSTM's sLSTM blocks round to 8).
        projection_bias: the `m` blocks' up, q/k/v and down projections have biases (DNA-xLSTM's
            `m_bias`); biolm's own models have none.
        rope_base: the RoPE base frequency theta (Prot-xLSTM: 5e5).
        final_norm: the norm before the output projection: "layer" (LayerNorm without bias, biolm's
            default) or "rms" (RMSNorm, as xLSTM-7B / transformers' xLSTM).
        logit_soft_cap: logits pass through `cap * tanh(x / cap)` (xLSTM-7B: 30); 0 disables the cap.
        unused_ids: token ids the model never predicts: their logits are -inf. A converted published
            model's tokenizer has biolm tokens its reference lacks (e.g. `<sep>`); without this they
            would take probability from the reference's own tokens.
    """

    vocab_size: int = 11
    d_model: int = 128
    n_layers: int = 4
    pattern: str = "m"
    num_heads: int = 4
    ffn_factor: float = 4 / 3
    proj_factor: float = 2.0
    qkv_block_size: int = 4
    conv_kernel: int = 4
    chunk_size: int = 64
    backend: str = "auto"
    tie_embeddings: bool = True
    dropout: float = 0.0
    norm_eps: float = 1e-5
    bidirectional: bool = False
    rc_equivariant: bool = False
    qk_dim_factor: float = 0.5
    v_dim_factor: float = 1.0
    gate_soft_cap: float = 15.0
    complement: list[int] | None = None
    ffn_activation: str = "silu"
    rope: str = "none"
    rope_base: float = 10000.0
    projection_bias: bool = False
    bidirectional_scope: str = "mixer"
    ffn_multiple: int = 64
    final_norm: str = "layer"
    logit_soft_cap: float = 0.0
    unused_ids: list[int] | None = None

    def __post_init__(self) -> None:
        for name in _COUNTS:
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be at least 1, got {getattr(self, name)}")
        for name in _FACTORS:
            if not 0 < getattr(self, name) < math.inf:
                raise ConfigError(f"model.{name} must be a positive finite number, got {getattr(self, name)}")
        if not _FLOAT32_TINY <= self.norm_eps <= _FLOAT32_MAX:
            # -1 or 0 make every output NaN (the all-NaN embeddings and NNNN samples of a model whose
            # config.yaml said norm_eps: -1.0); NaN fails this test too.
            raise ConfigError(
                f"model.norm_eps must be a positive number float32 can hold ({_FLOAT32_TINY:.2g} to "
                f"{_FLOAT32_MAX:.2g}), got {self.norm_eps}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ConfigError(
                    f"model.{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}"
                )
        for name in _CAPS:
            cap = getattr(self, name)
            if cap != 0 and not _FLOAT32_TINY <= cap <= _FLOAT32_MAX:
                raise ConfigError(
                    f"model.{name} must be 0 (no cap) or a positive number float32 can hold "
                    f"({_FLOAT32_TINY:.2g} to {_FLOAT32_MAX:.2g}), got {cap}"
                )
        if not 1 < self.rope_base <= _FLOAT32_MAX:
            raise ConfigError(f"model.rope_base must be a number above 1, got {self.rope_base}")
        if self.rope != "none" and self.rc_equivariant:
            raise ConfigError("model.rope is not supported with RC-equivariant models yet")
        if self.bidirectional_scope == "block" and self.rc_equivariant:
            raise ConfigError("model.bidirectional_scope block is not supported with rc_equivariant yet")
        rotated = self.inner_dim // self.num_heads if self.rope == "head" else self.inner_dim
        if self.rope != "none" and rotated % 2:
            raise ConfigError(f"model.rope rotates channel pairs: the rotated width {rotated} must be even")
        # block_types() validates the pattern here, before any weights exist.
        if set(self.block_types()) & _SPLIT_D_MODEL and self.d_model % (2 * self.num_heads):
            # s, a and t split d_model itself into heads, and RoPE rotates pairs of head channels.
            raise ConfigError(
                f"model.d_model ({self.d_model}) must be a multiple of 2 * model.num_heads "
                f"({2 * self.num_heads}) for block types s, a and t"
            )
        self._check_complement()
        if self.unused_ids is not None:
            # OmegaConf hands over a ListConfig; a plain sorted list keeps save/load and equality simple.
            self.unused_ids = sorted({int(i) for i in self.unused_ids})
            if (
                any(not 0 <= i < self.vocab_size for i in self.unused_ids)
                or len(self.unused_ids) >= self.vocab_size
            ):
                raise ConfigError(
                    f"model.unused_ids must be ids below vocab_size ({self.vocab_size}), leaving at least "
                    f"one token to predict; got {self.unused_ids}"
                )
        if "x" in self.block_types():
            self._check_x_dims()

    def _check_x_dims(self) -> None:
        # Checked at the width the blocks are built with (half of d_model with rc_equivariant).
        block = self.block_config()
        for name, dim in (("qk_dim_factor", block.qk_dim), ("v_dim_factor", block.v_dim)):
            if dim < self.num_heads or dim % self.num_heads:
                raise ConfigError(
                    f"model.{name} * block width ({block.d_model}) = {dim} must be a positive multiple of "
                    f"model.num_heads ({self.num_heads}) for block type x"
                )

    def _check_complement(self) -> None:
        if self.complement is not None:
            # OmegaConf hands over a ListConfig; a plain list keeps save/load and equality simple.
            self.complement = [int(c) for c in self.complement]
            comp = self.complement
            if sorted(comp) != list(range(self.vocab_size)):
                raise ConfigError(
                    f"model.complement must be a permutation of 0..{self.vocab_size - 1} "
                    f"(one entry per token id), got {comp}"
                )
            if any(comp[c] != i for i, c in enumerate(comp)):
                raise ConfigError("model.complement must be its own inverse (complement of complement)")
        if not self.rc_equivariant:
            return
        if self.complement is None:
            raise ConfigError(
                "model.rc_equivariant needs model.complement, the complement id of each token id "
                f"(for the DNA tokenizer: {DNA_COMPLEMENT})"
            )
        if self.d_model % 2:
            raise ConfigError(f"model.rc_equivariant needs an even model.d_model, got {self.d_model}")
        if set(self.block_types()) & _SPLIT_D_MODEL and self.d_model % (4 * self.num_heads):
            raise ConfigError(
                f"model.d_model ({self.d_model}) must be a multiple of 4 * model.num_heads "
                f"({4 * self.num_heads}) for block types s, a and t with model.rc_equivariant "
                "(each strand's half is split into heads)"
            )

    @property
    def stateless(self) -> bool:
        """True when the model reads the sequence from both ends, so it cannot continue one."""
        return self.bidirectional or self.rc_equivariant

    def block_config(self) -> ModelConfig:
        """The config the blocks are built from: half the width for `rc_equivariant`, else this one."""
        if not self.rc_equivariant:
            return self
        return dataclasses.replace(self, d_model=self.d_model // 2, rc_equivariant=False)

    @property
    def ffn_dim(self) -> int:
        """Width of the gated feed-forward: `ffn_factor * d_model`, rounded up to a multiple of
        `ffn_multiple`."""
        raw = int(round(self.ffn_factor * self.d_model))
        return -(-raw // self.ffn_multiple) * self.ffn_multiple

    @property
    def inner_dim(self) -> int:
        """Width of the mLSTM layer: `proj_factor * d_model`, rounded up so heads and blocks divide it."""
        multiple = self.num_heads * self.qkv_block_size
        raw = int(round(self.proj_factor * self.d_model))
        return -(-raw // multiple) * multiple

    @property
    def qk_dim(self) -> int:
        """Width of q and k of an x block over all heads: `int(qk_dim_factor * d_model)` (as xLSTMLarge)."""
        return int(self.qk_dim_factor * self.d_model)

    @property
    def v_dim(self) -> int:
        """Width of v of an x block over all heads: `int(v_dim_factor * d_model)` (as xLSTMLarge)."""
        return int(self.v_dim_factor * self.d_model)

    def block_types(self) -> list[str]:
        """The block letter of each layer, after expanding a one-letter pattern."""
        pattern = self.pattern * self.n_layers if len(self.pattern) == 1 else self.pattern
        if len(pattern) != self.n_layers:
            raise ConfigError(
                f"model.pattern {self.pattern!r} has {len(self.pattern)} letters but model.n_layers is "
                f"{self.n_layers}; give one letter per layer or a single letter"
            )
        for letter in pattern:
            if letter not in AVAILABLE_BLOCKS:
                known = ", ".join(f"{k} ({v})" for k, v in AVAILABLE_BLOCKS.items())
                raise ConfigError(f"model.pattern: unknown block type {letter!r}; available: {known}")
        return list(pattern)
