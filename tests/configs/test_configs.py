from __future__ import annotations

import pytest

from biolm.configs import load_config, packaged_config, to_train_config
from biolm.errors import ConfigError


def test_default_dna_config_loads():
    cfg = to_train_config(load_config(packaged_config("dna")))
    assert cfg.data.path is None and cfg.model.pattern == "m" and cfg.trainer.max_steps > 0


def test_overrides_apply_with_types():
    cfg = load_config(packaged_config("dna"), ["trainer.max_steps=7", "data.path=x.fa", "model.dropout=0.1"])
    assert cfg.trainer.max_steps == 7 and cfg.data.path == "x.fa" and cfg.model.dropout == 0.1


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.max_stepz=3", "unknown config key 'trainer.max_stepz'"),
        ("bogus=1", "unknown config key 'bogus'"),
        ("trainer.max_steps=many", "trainer.max_steps"),
        ("trainer.max_steps", "not of the form key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(packaged_config("dna"), [override])
    assert "\n" not in str(info.value)


def test_unknown_key_in_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  d_modle: 3\n")
    with pytest.raises(ConfigError, match="unknown config key 'model.d_modle'"):
        load_config(path)


def test_model_validation_runs_on_conversion():
    with pytest.raises(ConfigError, match="pattern"):
        to_train_config(load_config(packaged_config("dna"), ["model.pattern=mq", "model.n_layers=2"]))


def test_unknown_packaged_config():
    with pytest.raises(ConfigError, match="available: default"):
        packaged_config("dna", "nope")
