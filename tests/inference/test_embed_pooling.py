"""Poolings, layers, chunking and reverse-complement averaging of `embed_ids`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biolm.errors import ConfigError
from biolm.inference.embed_ids import embed_ids, resolve_layers
from biolm.models import DNA_COMPLEMENT

from .helpers import tiny_model


def _alone(model, seq: np.ndarray, layers: list[int]) -> np.ndarray:
    """Hidden states [L + 1, K, d] of one sequence after <bos>, in one call: the ground truth."""
    ids = torch.tensor([[model.tokenizer.bos_id, *seq.tolist()]])
    with torch.no_grad():
        states = model(ids, output_hidden_states=True).hidden_states
    return torch.stack([states[k][0] for k in layers], dim=1).numpy()


def _expected(model, seqs, pool: str, layers: list[int]):
    whole = [_alone(model, s, layers) for s in seqs]
    if pool == "per-token":
        return [h[1:] for h in whole]
    index = {"mean": None, "last": -1, "bos": 0}[pool]
    return np.stack([h[1:].mean(0) if index is None else h[index] for h in whole])


def _close(got, expected) -> None:
    if isinstance(expected, list):
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert g.shape == e.shape
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    else:
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_hidden_states_are_numbered_like_esm():
    model = tiny_model(pattern="ms")
    ids = torch.randint(6, 10, (2, 9))
    out = model(ids, output_hidden_states=True)
    assert len(out.hidden_states) == model.config.n_layers + 1
    torch.testing.assert_close(out.hidden_states[0], model.embedding(ids))
    torch.testing.assert_close(out.hidden_states[-1], model(ids).hidden)
    assert model(ids).hidden_states is None


@pytest.mark.parametrize("pool", ["mean", "last", "per-token"])
def test_causal_chunked_equals_one_pass_for_every_pooling_and_layer(pool):
    rng = np.random.default_rng(1)
    model = tiny_model(pattern="ms")
    seqs = [rng.integers(6, 10, size=n) for n in (41, 7, 16)]
    layers = [2, 0, 1]
    # chunk_len 8 splits the long sequence mid-way and makes the short ones end inside the first chunk.
    got = embed_ids(model, seqs, chunk_len=8, batch_tokens=64, progress=False, pool=pool, layers=layers)
    _close(got, _expected(model, seqs, pool, layers))


@pytest.mark.parametrize(
    "extra",
    [{"bidirectional": True}, {"rc_equivariant": True, "complement": DNA_COMPLEMENT}],
    ids=["bi", "rc"],
)
@pytest.mark.parametrize("pool", ["mean", "last", "bos", "per-token"])
def test_stateless_models_embed_each_sequence_as_if_alone(extra, pool):
    rng = np.random.default_rng(2)
    model = tiny_model(**extra)
    seqs = [rng.integers(6, 10, size=n) for n in (5, 17, 9)]
    got = embed_ids(model, seqs, progress=False, pool=pool, layers=[-1, 0])
    _close(got, _expected(model, seqs, pool, [2, 0]))


def test_single_layer_is_squeezed_and_default_is_final_mean():
    rng = np.random.default_rng(3)
    model = tiny_model()
    seqs = [rng.integers(6, 10, size=n) for n in (12, 3)]
    default = embed_ids(model, seqs, progress=False)
    assert default.shape == (2, 32)
    _close(default, _expected(model, seqs, "mean", [2])[:, 0])
    _close(embed_ids(model, seqs, progress=False, layers=1), _expected(model, seqs, "mean", [1])[:, 0])
    assert embed_ids(model, seqs, progress=False, layers="all").shape == (2, 3, 32)


def test_bos_pooling_of_a_causal_model_is_refused():
    with pytest.raises(ConfigError, match="'last'"):
        embed_ids(tiny_model(), [np.array([6, 7])], progress=False, pool="bos")


@pytest.mark.parametrize("pool", ["mean", "last", "per-token"])
def test_rc_average_is_the_mean_of_both_strands(pool):
    rng = np.random.default_rng(4)
    model = tiny_model()
    seqs = [rng.integers(6, 10, size=n) for n in (13, 6)]
    rc = [model.tokenizer.reverse_complement(s) for s in seqs]
    fwd = embed_ids(model, seqs, progress=False, pool=pool)
    rev = embed_ids(model, rc, progress=False, pool=pool)
    got = embed_ids(model, seqs, progress=False, pool=pool, rc_average=True)
    if pool == "per-token":
        _close(got, [(f + r[::-1]) / 2 for f, r in zip(fwd, rev, strict=True)])
    else:
        _close(got, (fwd + rev) / 2)
        assert not np.allclose(got, fwd, atol=1e-4)  # the reverse strand really contributes


def test_rc_average_needs_a_dna_model():
    from biolm.tokenizers import ProteinTokenizer

    with pytest.raises(ConfigError, match="DNA"):
        embed_ids(tiny_model(ProteinTokenizer()), [np.array([6, 7])], progress=False, rc_average=True)


def test_resolve_layers():
    assert resolve_layers(None, 4) == [4]
    assert resolve_layers("-1,-2", 4) == [4, 3]
    assert resolve_layers("all", 2) == [0, 1, 2]
    assert resolve_layers(0, 4) == [0]
    for bad, message in [(5, "does not exist"), ("-1,4", "twice"), ("last", "comma-separated")]:
        with pytest.raises(ConfigError, match=message):
            resolve_layers(bad, 4)
