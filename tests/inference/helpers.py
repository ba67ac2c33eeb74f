"""Tiny randomly initialised models for the embedding tests (no training, no downloads)."""

from __future__ import annotations

import torch

from biolm.models import BioLM, ModelConfig
from biolm.tokenizers import DNATokenizer, Tokenizer, get_tokenizer


def tiny_model(tokenizer: Tokenizer | None = None, seed: int = 0, **extra) -> BioLM:
    """A 2-layer, 32-wide model with `tokenizer` (DNA by default) attached, in eval mode."""
    tokenizer = tokenizer or DNATokenizer()
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_layers=2, num_heads=2, **extra)
    model = BioLM(config).eval()
    model.tokenizer = tokenizer
    return model


def tokenizer_of(kind: str) -> Tokenizer:
    return get_tokenizer(kind)
