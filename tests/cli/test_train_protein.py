"""`biolm train protein` (and the other domains through the same runner) on tiny configs."""

from __future__ import annotations

import gzip
import json

import pytest

from biolm.cli.main import main

TINY = [
    "--no-progress",
    "trainer.max_steps=2",
    "trainer.log_every_n_steps=1",
    "data.seq_len=48",
    "data.batch_size=4",
    "data.windows_per_epoch=8",
    "data.max_val_windows=4",
    "model.d_model=16",
    "model.n_layers=1",
    "model.num_heads=2",
    "model.chunk_size=16",
    "optim.warmup_steps=1",
]


def test_default_protein_run_writes_a_loadable_model(tmp_path, capsys):
    import biolm

    assert main(["train", "protein", f"run_root={tmp_path}", "name=p", *TINY]) == 0
    out = capsys.readouterr().out
    assert "built-in proteome" in out and "per token" in out and "Markov" not in out
    run = tmp_path / "p"
    for name in ["config.yaml", "metrics.csv", "summary.json", "model/model.safetensors"]:
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["domain"] == "protein" and summary["steps"] == 2
    assert summary["markov_ppl"] is None and 1 < summary["val_ppl"] < 100
    assert 0 < summary["val_targets"] <= 4 * 48
    model = biolm.load(run / "model")
    assert model.tokenizer.kind == "protein" and model.tokenizer.vocab_size == 31


@pytest.fixture
def families(tmp_path):
    folder = tmp_path / "fams"
    folder.mkdir()
    (folder / "A.fasta").write_text("".join(f">a{i}\nMKV-LLAG{'W' * i}\n" for i in range(8)))
    with gzip.open(folder / "B.a3m.gz", "wt") as handle:
        handle.write("".join(f">b{i}\nGGSSa{'c' * i}DE\n" for i in range(8)))
    return folder


def test_fim_and_in_context_packing_runs(tmp_path, families):
    import biolm

    args = ["train", "protein", f"run_root={tmp_path}", f"data.path={families}", *TINY]
    assert main([*args, "name=fim", "task.objective=fim", "data.val_fraction=0.25"]) == 0
    tok = biolm.load(tmp_path / "fim" / "model").tokenizer
    assert tok.vocab_size == 34 and tok.fim_sentinels == 3
    packed = [*args, "name=ctx", "data.packing=sets", "data.loss_after_members=1", "data.val_fraction=0.5"]
    assert main(packed) == 0
    assert json.loads((tmp_path / "ctx" / "summary.json").read_text())["val_targets"] > 0


def test_masked_lm_objective_through_the_runner(tmp_path):
    args = ["train", "dna", f"run_root={tmp_path}", "name=mlm", *TINY, "task.objective=mlm"]
    assert main([*args, "model.bidirectional=true"]) == 0
    summary = json.loads((tmp_path / "mlm" / "summary.json").read_text())
    assert summary["objective"] == "mlm" and summary["markov_ppl"] is None  # not comparable


@pytest.mark.parametrize(
    "args, message",
    [
        (["protein", "task.objective=mlm"], "needs model.bidirectional=true"),
        (["dna", "task.objective=fim"], "fim is for protein models"),
        (["protein", "data.rc_augment=true"], "data.rc_augment is for DNA"),
        (["protein", "data.path=MISSING"], "file not found"),
        (["protein", "data.path=BAD"], "record 'x': invalid character 'J' at position 3"),
    ],
)
def test_bad_protein_runs_are_one_line_errors_and_leave_nothing(tmp_path, capsys, args, message):
    bad = tmp_path / "bad.fa"
    bad.write_text(">ok\nMKVL\n>x\nMKJL\n")
    runs = tmp_path / "runs"
    args = [a.replace("MISSING", str(tmp_path / "no.fa")).replace("BAD", str(bad)) for a in args]
    assert main(["train", *args, f"run_root={runs}"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not runs.exists()


def test_chem_trains_through_the_same_runner(tmp_path):
    smiles = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "CCCl", "OCC(O)CO", "CC(C)O", "c1ccncc1"] * 3
    data = tmp_path / "mols.smi"
    data.write_text("\n".join(smiles) + "\n")
    config = tmp_path / "chem.yaml"
    config.write_text("name: chem\n")  # everything else from the schema defaults and TINY
    args = ["train", "chem", "--config", str(config), f"run_root={tmp_path}", f"data.path={data}", *TINY]
    assert main([*args, "data.val_fraction=0.25"]) == 0
    summary = json.loads((tmp_path / "chem" / "summary.json").read_text())
    assert summary["domain"] == "chem" and summary["markov_ppl"] is None and summary["val_targets"] > 0
