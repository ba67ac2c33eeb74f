"""BioLM save/load and configuration checks (behaviour per block pattern is in test_blocks.py)."""

from __future__ import annotations

import pytest
import torch

from biolm.errors import ConfigError, InputError, OutputError
from biolm.models import BioLM, ModelConfig
from biolm.models.io import CONFIG_FILE, load, save
from biolm.tokenizers import DNATokenizer

TINY = dict(vocab_size=11, d_model=32, n_layers=2, num_heads=2, chunk_size=8)


@pytest.fixture
def model() -> BioLM:
    model = BioLM(ModelConfig(**TINY)).double()
    # Non-trivial gates, so that state passing is really exercised.
    for block in model.blocks:
        torch.nn.init.normal_(block.layer.igate.weight, std=0.5)
        torch.nn.init.normal_(block.layer.fgate.weight, std=0.5)
    return model.eval()


def test_save_replaces_only_an_earlier_model_directory(tmp_path, model):
    tokenizer = DNATokenizer()
    target = save(model, tokenizer, tmp_path / "m")
    save(model, tokenizer, target)  # an earlier model, marked: replaced
    (target / ".biolm-output.json").unlink()
    save(model, tokenizer, target)  # a model directory from before the marker: recognised, replaced
    (target / "README.md").write_text("my notes on this model\n")
    with pytest.raises(OutputError, match="README.md"):
        save(model, tokenizer, target)
    assert (target / "README.md").read_text() == "my notes on this model\n"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "genome.fa").write_text(">a\nACGT\n")
    with pytest.raises(OutputError, match="genome.fa"):
        save(model, tokenizer, tmp_path / "data")
    assert (tmp_path / "data" / "genome.fa").read_text() == ">a\nACGT\n"


def test_save_and_load_round_trip(tmp_path, model):
    model = model.float()
    tokenizer = DNATokenizer()
    save(model, tokenizer, tmp_path / "m")
    # The three model files and biolm's output marker (so a later save may replace the directory).
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        ".biolm-output.json",
        CONFIG_FILE,
        "model.safetensors",
        "tokenizer.json",
    ]
    loaded = load(tmp_path / "m")
    ids = torch.randint(6, 11, (2, 33))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    assert loaded.config == model.config
    assert loaded.tokenizer.tokens == tokenizer.tokens
    assert loaded.lm_head.weight.data_ptr() == loaded.embedding.weight.data_ptr()  # still tied


def test_save_replaces_existing_directory(tmp_path, model):
    save(model.float(), DNATokenizer(), tmp_path / "m")
    save(model.float(), DNATokenizer(), tmp_path / "m")
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_load_rejects_newer_format(tmp_path, model):
    save(model.float(), DNATokenizer(), tmp_path / "m")
    path = tmp_path / "m" / CONFIG_FILE
    path.write_text(path.read_text().replace("format_version: 1", "format_version: 99"))
    with pytest.raises(InputError, match="format version 99"):
        load(tmp_path / "m")


def test_load_missing_directory(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load(tmp_path / "nope")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(pattern="mq", n_layers=2), "unknown block type 'q'"),
        (dict(pattern="mmm", n_layers=2), "one letter per layer"),
        (dict(d_model=0), "d_model"),
        (dict(backend="cuda"), "model.backend"),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**{**TINY, **kwargs})


def test_inner_dim_divisible_by_heads_and_blocks():
    config = ModelConfig(d_model=50, num_heads=3, qkv_block_size=4, proj_factor=1.3)
    assert config.inner_dim % 12 == 0 and config.inner_dim >= 65
    BioLM(config)(torch.zeros(1, 5, dtype=torch.long))
