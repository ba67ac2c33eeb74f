"""Interpolations in training configs are resolved once, when the config is loaded: a run saves plain
values, and an interpolation that does not resolve is one line naming the file or override and the key."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from biolm.configs import load_config, packaged_config, to_train_config
from biolm.errors import ConfigError


def test_interpolations_resolve_to_plain_values(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOLM_TEST_ROOT", "/data/runs")
    path = tmp_path / "c.yaml"
    path.write_text("name: run_${seed}\nrun_root: ${oc.env:BIOLM_TEST_ROOT}\nseed: 3\n")
    config = load_config(path, ["trainer.max_steps=${model.d_model}"])
    assert OmegaConf.to_yaml(config).count("${") == 0  # what the run saves
    cfg = to_train_config(config)
    assert (cfg.name, cfg.run_root, cfg.trainer.max_steps) == ("run_3", "/data/runs", cfg.model.d_model)


def test_an_override_is_seen_by_the_files_interpolations(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: run_${seed}\n")
    assert to_train_config(load_config(path, ["seed=7"])).name == "run_7"


@pytest.mark.parametrize(
    "text, overrides, parts",
    [
        ("name: ${nope.key}\n", [], ["c.yaml", "nope.key", "key 'name'"]),
        ("trainer:\n  max_steps: ${name}\n", [], ["c.yaml", "trainer.max_steps"]),
        ("name: ${oc.decode:'[1'}\n", [], ["c.yaml", "key 'name'"]),
        ("name: \\${x}\n", [], ["c.yaml", "key 'name' is '${x}'"]),
        ("", ["name=${oc.env:BIOLM_SURELY_UNSET}"], ["override 'name=", "BIOLM_SURELY_UNSET", "key 'name'"]),
    ],
)
def test_interpolations_that_do_not_resolve(tmp_path, text, overrides, parts):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert "\n" not in message
    for part in parts:
        assert part in message


def test_a_config_made_elsewhere_is_converted_with_one_line_errors():
    config = load_config(packaged_config("dna"))
    config.name = "${nope}"
    with pytest.raises(ConfigError, match="config: .*nope"):
        to_train_config(config)
