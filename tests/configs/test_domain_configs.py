from __future__ import annotations

import pytest

from biolm.configs import load_config, packaged_config, to_train_config
from biolm.errors import ConfigError


def test_default_protein_config_loads():
    cfg = to_train_config(load_config(packaged_config("protein")))
    assert cfg.name == "protein" and cfg.data.path is None and cfg.task.objective == "clm"
    assert cfg.data.packing == "none" and cfg.data.loss_after_members == 0


def test_dna_default_keeps_its_objective_and_no_augmentation():
    cfg = to_train_config(load_config(packaged_config("dna")))
    assert cfg.task.objective == "clm" and cfg.data.rc_augment is False


@pytest.mark.parametrize(
    "override, message",
    [
        ("task.objective=gpt", "task.objective must be one of clm, mlm, fim"),
        ("task.fim_max_spans=0", "task.fim_max_spans"),
        ("data.packing=families", "data.packing must be one of none, sets"),
        ("data.loss_after_members=1", "needs data.packing=sets"),
    ],
)
def test_bad_task_and_data_values(override, message):
    with pytest.raises(ConfigError, match=message):
        to_train_config(load_config(packaged_config("protein"), [override]))


def test_chem_keys_are_in_the_schema():
    overrides = ["data.packing=sets", "data.smiles_column=smiles", "data.randomize_smiles=false"]
    cfg = to_train_config(load_config(packaged_config("chem"), overrides))
    assert (cfg.data.packing, cfg.data.smiles_column, cfg.data.randomize_smiles) == ("sets", "smiles", False)
