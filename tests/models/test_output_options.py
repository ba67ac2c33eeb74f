"""The model's output options that converted models need: `unused_ids` (ids never predicted: -inf
logits in every forward path, kept by save/load), `logit_soft_cap` and the RMS `final_norm`."""

from __future__ import annotations

import pytest
import torch

from biolm.errors import ConfigError
from biolm.models import BioLM
from biolm.models.config import ModelConfig
from biolm.models.io import load, save
from biolm.tokenizers import DNATokenizer


def _model(**kwargs) -> BioLM:
    return BioLM(ModelConfig(vocab_size=11, d_model=16, n_layers=1, num_heads=2, **kwargs)).eval()


def test_unused_ids_are_never_predicted_by_forward_and_step(tmp_path):
    model = _model(unused_ids=[3, 4])
    ids = torch.tensor([[1, 6, 7, 8]])
    logits = model(ids).logits
    assert torch.isneginf(logits[..., [3, 4]]).all() and torch.isfinite(logits[..., 5:]).all()
    step_logits, _ = model.step(ids[:, 0], model.init_state(1))
    assert torch.isneginf(step_logits[:, [3, 4]]).all()
    plain = _model()
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(plain(ids).logits[..., 5:], logits[..., 5:])
    save(model, DNATokenizer(), tmp_path / "m")
    assert load(tmp_path / "m").config.unused_ids == [3, 4]


def test_rc_equivariant_models_mask_too():
    from biolm.models.config import DNA_COMPLEMENT

    model = _model(unused_ids=[3], rc_equivariant=True, bidirectional=True, complement=DNA_COMPLEMENT)
    assert torch.isneginf(model(torch.tensor([[1, 6, 7]])).logits[..., 3]).all()


@pytest.mark.parametrize("bad", [[11], [-1], list(range(11))])
def test_bad_unused_ids_are_refused(bad):
    with pytest.raises(ConfigError, match="unused_ids"):
        _model(unused_ids=bad)


def test_logit_soft_cap_and_rms_final_norm():
    capped = _model(logit_soft_cap=2.0, final_norm="rms")
    plain = _model(final_norm="rms")
    plain.load_state_dict(capped.state_dict())
    with torch.no_grad():
        capped.lm_head.weight.mul_(50)  # logits far beyond the cap
        plain.lm_head.weight.copy_(capped.lm_head.weight)
    ids = torch.tensor([[1, 6, 7, 8]])
    raw = plain(ids).logits
    torch.testing.assert_close(capped(ids).logits, 2.0 * torch.tanh(raw / 2.0))
    assert capped(ids).logits.abs().max() <= 2.0 < raw.abs().max()
    x = torch.randn(2, 3, 16)
    norm = capped.final_norm
    expected = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight
    torch.testing.assert_close(norm(x), expected)


@pytest.mark.parametrize(
    ("setting", "match"),
    [({"final_norm": "batch"}, "final_norm"), ({"logit_soft_cap": -1.0}, "logit_soft_cap")],
)
def test_bad_output_settings_are_refused(setting, match):
    with pytest.raises(ConfigError, match=match):
        _model(**setting)


def test_a_stored_layout_round_trips_and_a_bad_one_is_one_line(tmp_path):
    from biolm.errors import InputError
    from biolm.tokenizers import ProteinTokenizer

    model = BioLM(ModelConfig(vocab_size=31, d_model=16, n_layers=1, num_heads=2)).eval()
    model.layout_spec = {
        "open": "<bos>",
        "separator": "<bos>",
        "close": "<eos>",
        "restart_positions": True,
        "fim": "cut",
    }
    save(model, ProteinTokenizer(), tmp_path / "m")
    assert load(tmp_path / "m").layout_spec == model.layout_spec
    text = (tmp_path / "m" / "config.yaml").read_text().replace("separator: <bos>", "separator: <nope>")
    (tmp_path / "m" / "config.yaml").write_text(text)
    with pytest.raises(InputError, match="layout separator '<nope>' is not a token of the model"):
        load(tmp_path / "m")
