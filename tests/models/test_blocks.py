"""Every block type (m mLSTM, s sLSTM, a gated linear attention, t softmax attention) inside `BioLM`:
state passing, step decoding, causality, gradients and save/load, for each pattern."""

from __future__ import annotations

import pytest
import torch

from biolm.errors import ConfigError
from biolm.models import BioLM, ModelConfig
from biolm.models.io import load, save
from biolm.models.linear_attention import GatedLinearAttention
from biolm.models.slstm import SLSTMLayer
from biolm.tokenizers import DNATokenizer
from tests.models.helpers import PATTERNS


def tiny(pattern: str) -> ModelConfig:
    return ModelConfig(
        vocab_size=11, d_model=32, n_layers=len(pattern), pattern=pattern, num_heads=2, chunk_size=8
    )


def make_model(pattern: str) -> BioLM:
    torch.manual_seed(0)
    model = BioLM(tiny(pattern)).double()
    # Non-trivial gates and recurrent weights, so that state passing is really exercised.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, SLSTMLayer):
                module.R.normal_(std=0.3)
                module.bias.normal_(std=1.0)
            elif isinstance(module, GatedLinearAttention):
                module.decay.weight.normal_(std=0.5)
            elif hasattr(module, "igate"):
                module.igate.weight.normal_(std=0.5)
                module.fgate.weight.normal_(std=0.5)
    return model.eval()


@pytest.fixture(params=PATTERNS)
def model(request) -> BioLM:
    return make_model(request.param)


def test_forward_in_pieces_equals_one_call(model):
    ids = torch.randint(6, 11, (3, 45))
    whole = model(ids)
    first = model(ids[:, :17])
    second = model(ids[:, 17:], state=first.state)
    torch.testing.assert_close(torch.cat([first.logits, second.logits], 1), whole.logits)
    torch.testing.assert_close(torch.cat([first.hidden, second.hidden], 1), whole.hidden)


def test_step_equals_forward(model):
    ids = torch.randint(6, 11, (2, 20))
    whole = model(ids).logits
    state = model.init_state(2)
    for t in range(ids.shape[1]):
        logits, state = model.step(ids[:, t], state)
        torch.testing.assert_close(logits, whole[:, t])


def test_model_is_causal(model):
    ids = torch.randint(6, 11, (1, 30))
    changed = ids.clone()
    changed[0, 20] = 6 if ids[0, 20] != 6 else 7
    a, b = model(ids).logits, model(changed).logits
    torch.testing.assert_close(a[:, :20], b[:, :20])
    assert not torch.allclose(a[:, 20:], b[:, 20:])


@pytest.mark.parametrize("pattern", PATTERNS)
def test_gradients_reach_every_parameter(pattern):
    model = BioLM(tiny(pattern))
    ids = torch.randint(6, 11, (2, 19))
    model(ids).logits.logsumexp(-1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_save_and_load_round_trip(tmp_path, model):
    model = model.float()
    save(model, DNATokenizer(), tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert loaded.config == model.config
    ids = torch.randint(6, 11, (2, 33))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits, rtol=0, atol=0)


def test_config_accepts_new_letters_and_rejects_unknown():
    assert tiny("msat").block_types() == ["m", "s", "a", "t"]
    assert ModelConfig(pattern="t", n_layers=3).block_types() == ["t"] * 3
    with pytest.raises(ConfigError, match="unknown block type 'q'"):
        tiny("msq")
    with pytest.raises(ConfigError, match="multiple of 2 \\* model.num_heads"):
        ModelConfig(d_model=30, num_heads=4, pattern="s")


def test_ffn_dim_rounds_up_to_64():
    assert ModelConfig(d_model=128).ffn_dim == 192
    assert ModelConfig(d_model=32).ffn_dim == 64
