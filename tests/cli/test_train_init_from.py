"""`biolm train ... init_from=MODEL_DIR`: a run that starts from trained weights."""

from __future__ import annotations

import shutil

import pytest
from omegaconf import OmegaConf
from safetensors.torch import load_file

from biolm.cli.main import main
from tests.cli.test_train_protein import TINY


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    root = tmp_path_factory.mktemp("start")
    assert main(["train", "protein", f"run_root={root}", "name=p", *TINY]) == 0
    return root / "p" / "model"


def weights(model_dir):
    return load_file(str(model_dir / "model.safetensors"))


def test_a_run_starts_from_the_weights_and_settings_of_the_model(start, tmp_path, capsys):
    # lr 0: AdamW changes nothing (its decay is scaled by lr too), so the export is the start.
    args = ["train", "protein", f"run_root={tmp_path}", "name=q", *TINY, "model.d_model=32"]
    assert main([*args, f"init_from={start}", "optim.lr=0"]) == 0
    assert "d_model 32 -> 16" in capsys.readouterr().out
    ours, theirs = weights(tmp_path / "q" / "model"), weights(start)
    assert ours.keys() == theirs.keys()
    assert all((ours[k] == theirs[k]).all() for k in ours)
    saved = OmegaConf.load(tmp_path / "q" / "config.yaml")
    assert (
        saved.model.d_model == 16
        and saved.model.vocab_size == OmegaConf.load(start / "config.yaml").model.vocab_size
    )

    # The run resumes from its checkpoint, without the starting directory, and still trains.
    moved = tmp_path / "moved"
    shutil.move(start, moved)
    try:
        assert (
            main(
                ["train", "protein", "--resume", str(tmp_path / "q"), "--no-progress", "trainer.max_steps=3"]
            )
            == 0
        )
    finally:
        shutil.move(moved, start)


def test_training_from_a_start_moves_the_weights(start, tmp_path):
    assert main(["train", "protein", f"run_root={tmp_path}", "name=q", *TINY, f"init_from={start}"]) == 0
    ours, theirs = weights(tmp_path / "q" / "model"), weights(start)
    assert any(not (ours[k] == theirs[k]).all() for k in ours)


def test_a_model_of_another_domain_is_refused_in_one_line(start, tmp_path, capsys):
    genome = tmp_path / "g.fa"
    genome.write_text(">chr\n" + "ACGTTGCA" * 200 + "\n")
    args = [
        "train",
        "dna",
        f"run_root={tmp_path}",
        "name=d",
        *TINY,
        f"data.path={genome}",
        f"init_from={start}",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "init_from" in err[0]
        and "protein tokenizer" in err[0]
        and "dna tokenizer" in err[0]
    )
    assert not (tmp_path / "d").exists()


def test_a_missing_model_directory_is_a_config_error(tmp_path, capsys):
    args = ["train", "protein", f"run_root={tmp_path}", "name=q", *TINY, f"init_from={tmp_path / 'nope'}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "error: init_from:" in err and "nope" in err and "not found" in err


def test_a_chem_model_with_a_format_1_vocabulary_starts_a_run_that_keeps_it(tmp_path):
    # Models trained before bracket atoms were split into parts (SMILES tokenizer format 1, 315 ids).
    import torch

    from biolm.models import BioLM, ModelConfig
    from biolm.models.io import load, save
    from biolm.tokenizers import SmilesTokenizer

    old = SmilesTokenizer(bracket_parts=False)
    torch.manual_seed(0)
    model = BioLM(ModelConfig(vocab_size=old.vocab_size, d_model=16, n_layers=1, num_heads=2, chunk_size=16))
    start = save(model, old, tmp_path / "old")
    data = tmp_path / "mols.smi"
    data.write_text("\n".join(["CCO", "c1ccccc1", "CC(=O)O", "CCN", "OCC(O)CO", "c1ccncc1"] * 4) + "\n")
    args = ["train", "chem", f"run_root={tmp_path}", "name=c", f"data.path={data}", *TINY]
    assert main([*args, "data.val_fraction=0.25", f"init_from={start}"]) == 0
    trained = load(tmp_path / "c" / "model")
    assert trained.tokenizer.vocab_size == old.vocab_size == 315
    assert not trained.tokenizer.bracket_parts
    assert trained.tokenizer.encode("C[C@@H](N)O").tolist() == old.encode("C[C@@H](N)O").tolist()
