"""Model configuration: one dataclass describes every biolm backbone."""

from __future__ import annotations

from dataclasses import dataclass

from biolm.errors import ConfigError

# Block types that exist today; the letters follow DESIGN.md.
AVAILABLE_BLOCKS = {"m": "mLSTM", "s": "sLSTM", "a": "gated linear attention", "t": "softmax attention"}
KERNEL_BACKENDS = ("auto", "torch", "triton", "reference")


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
        ffn_factor: the gated feed-forward of the s, a and t blocks has width `ffn_factor * d_model`,
            rounded up to a multiple of 64 (xLSTM paper: 4/3 for sLSTM blocks).
        chunk_size: chunk length of the chunkwise mLSTM and linear-attention kernels.
        backend: kernel backend, "auto" | "torch" | "triton" | "reference".
        tie_embeddings: share the input embedding with the output projection.
        dropout: dropout on each block's output.
        norm_eps: epsilon of every normalisation layer.
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

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "num_heads", "qkv_block_size", "conv_kernel"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be at least 1, got {getattr(self, name)}")
        if self.ffn_factor <= 0:
            raise ConfigError(f"model.ffn_factor must be positive, got {self.ffn_factor}")
        if self.proj_factor <= 0:
            raise ConfigError(f"model.proj_factor must be positive, got {self.proj_factor}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.backend not in KERNEL_BACKENDS:
            raise ConfigError(
                f"model.backend must be one of {', '.join(KERNEL_BACKENDS)}; got {self.backend!r}"
            )
        # block_types() validates the pattern here, before any weights exist.
        if set(self.block_types()) - {"m"} and self.d_model % (2 * self.num_heads):
            # s, a and t split d_model itself into heads, and RoPE rotates pairs of head channels.
            raise ConfigError(
                f"model.d_model ({self.d_model}) must be a multiple of 2 * model.num_heads "
                f"({2 * self.num_heads}) for block types s, a and t"
            )

    @property
    def ffn_dim(self) -> int:
        """Width of the gated feed-forward: `ffn_factor * d_model`, rounded up to a multiple of 64."""
        raw = int(round(self.ffn_factor * self.d_model))
        return -(-raw // 64) * 64

    @property
    def inner_dim(self) -> int:
        """Width of the mLSTM layer: `proj_factor * d_model`, rounded up so heads and blocks divide it."""
        multiple = self.num_heads * self.qkv_block_size
        raw = int(round(self.proj_factor * self.d_model))
        return -(-raw // multiple) * multiple

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
