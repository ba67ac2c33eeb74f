"""Embeddings of bidirectional / RC models: whole sequences, no padding in any reverse pass."""

from __future__ import annotations

import numpy as np
import torch

from biolm.inference.embed_ids import embed_ids
from biolm.models import DNA_COMPLEMENT, BioLM, ModelConfig
from biolm.tokenizers import DNATokenizer


def _model(**extra) -> BioLM:
    tokenizer = DNATokenizer()
    config = ModelConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_layers=2, num_heads=2, **extra)
    model = BioLM(config).eval()
    model.tokenizer = tokenizer
    return model


def _alone(model: BioLM, seq: np.ndarray) -> np.ndarray:
    ids = torch.tensor([[model.tokenizer.bos_id, *seq.tolist()]])
    return model(ids).hidden[0, 1:].mean(0).detach().numpy()


def test_stateless_models_embed_each_sequence_as_if_alone():
    rng = np.random.default_rng(0)
    seqs = [rng.integers(6, 10, size=n) for n in (5, 17, 9, 30)]
    for model in (_model(bidirectional=True), _model(rc_equivariant=True, complement=DNA_COMPLEMENT)):
        got = embed_ids(model, seqs, batch_tokens=10_000, progress=False)
        expected = np.stack([_alone(model, s) for s in seqs])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_causal_model_chunked_embedding_equals_whole():
    rng = np.random.default_rng(1)
    seqs = [rng.integers(6, 10, size=n) for n in (40, 7)]
    model = _model()
    got = embed_ids(model, seqs, chunk_len=8, progress=False)
    expected = np.stack([_alone(model, s) for s in seqs])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
