"""The xLSTM-7B block (`x`): state passing, step decoding, packing, gradients, and the parameter count
of the xlstm package's xLSTMLarge at the benchmark config."""

from __future__ import annotations

import pytest
import torch

from biolm.errors import ConfigError
from biolm.models import BioLM, ModelConfig
from biolm.models.xlstm7b import XLSTM7BLayer, soft_cap
from tests.models.helpers import cu_seqlens, make_model, tiny_config


def make_layer(**overrides) -> XLSTM7BLayer:
    torch.manual_seed(0)
    layer = XLSTM7BLayer(tiny_config("x", **overrides)).double()
    with torch.no_grad():  # input-dependent gates, so that the state matters
        layer.igate.weight.normal_(std=0.5)
        layer.fgate.weight.normal_(std=0.5)
    return layer


def test_layer_in_two_pieces_equals_one_call():
    layer = make_layer()
    x = torch.randn(2, 29, 32, dtype=torch.float64)
    whole, whole_state = layer(x)
    first, state = layer(x[:, :11])
    second, state = layer(x[:, 11:], state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    for a, b in zip(state, whole_state, strict=True):
        torch.testing.assert_close(a, b)


def test_layer_step_equals_forward():
    layer = make_layer()
    x = torch.randn(2, 9, 32, dtype=torch.float64)
    whole, _ = layer(x)
    state = layer.init_state(2, x.device, x.dtype)
    for t in range(x.shape[1]):
        y, state = layer(x[:, t : t + 1], state)
        torch.testing.assert_close(y[:, 0], whole[:, t])


def test_model_packed_equals_separate():
    model = make_model("xx")
    lengths = [5, 12, 3]
    docs = [torch.randint(6, 11, (1, n)) for n in lengths]
    packed = model(torch.cat(docs, 1), cu_seqlens=cu_seqlens(lengths)).logits
    torch.testing.assert_close(packed, torch.cat([model(d).logits for d in docs], 1))


def test_model_state_passing_and_step():
    model = make_model("xx")
    ids = torch.randint(6, 11, (2, 21))
    whole = model(ids).logits
    first = model(ids[:, :8])
    second = model(ids[:, 8:], state=first.state)
    torch.testing.assert_close(torch.cat([first.logits, second.logits], 1), whole)
    logits, state = model.step(ids[:, 0], model.init_state(2))
    torch.testing.assert_close(logits, whole[:, 0])


def test_gradients_reach_every_parameter():
    model = BioLM(tiny_config("x", tie_embeddings=False))
    with torch.no_grad():  # zero gate weights at init would still get a gradient; this is a stronger check
        model.blocks[0].mixer.igate.weight.normal_(std=0.1)
    ids = torch.randint(6, 11, (2, 19))
    model(ids).logits.logsumexp(-1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_gates_are_soft_capped():
    layer = make_layer(gate_soft_cap=2.0)
    x = 100 * torch.randn(1, 7, 32, dtype=torch.float64)
    *_, i, f = layer._projections(x)
    assert i.abs().max() <= 2.0 and f.abs().max() <= 2.0  # tanh saturates to exactly 1 in float
    torch.testing.assert_close(soft_cap(torch.tensor([0.01]), 15.0), torch.tensor([0.01]), rtol=1e-6, atol=0)
    assert torch.equal(soft_cap(torch.tensor([123.0]), 0.0), torch.tensor([123.0]))


def test_dims_follow_factors_and_are_checked():
    layer = XLSTM7BLayer(ModelConfig(d_model=256, num_heads=4, pattern="x"))
    assert (layer.q.out_features, layer.v.out_features) == (128, 256)
    with pytest.raises(ConfigError, match="qk_dim_factor"):
        ModelConfig(d_model=32, num_heads=3, pattern="x", v_dim_factor=0.75)  # qk 16 is not a multiple of 3
    with pytest.raises(ConfigError, match="v_dim_factor"):
        ModelConfig(d_model=32, num_heads=2, pattern="x", v_dim_factor=0.0)
    with pytest.raises(ConfigError, match="gate_soft_cap"):
        ModelConfig(pattern="x", gate_soft_cap=-1.0)


def test_parameter_count_equals_xlstm_large():
    model_module = pytest.importorskip("xlstm.xlstm_large.model")
    peer_config = model_module.xLSTMLargeConfig(
        embedding_dim=256, num_heads=4, num_blocks=4, vocab_size=16,
        chunkwise_kernel="chunkwise--native_custbw", sequence_kernel="native_sequence__native",
        step_kernel="native", return_last_states=True,
    )  # fmt: skip
    peer = model_module.xLSTMLarge(peer_config)
    config = dict(vocab_size=16, d_model=256, n_layers=4, num_heads=4, ffn_factor=8 / 3)
    ours = BioLM(ModelConfig(**config, pattern="x", tie_embeddings=False))
    assert ours.num_parameters() == sum(p.numel() for p in peer.parameters()) == 3_231_008
    # Block by block too, not only in total.
    peer_block = sum(p.numel() for p in peer.backbone.blocks[0].parameters())
    assert sum(p.numel() for p in ours.blocks[0].parameters()) == peer_block
