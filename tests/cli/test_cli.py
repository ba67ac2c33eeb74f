"""End-to-end: the `biolm` command on a tiny config, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from biolm.cli.main import main

TINY = [
    "trainer.max_steps=6",
    "trainer.checkpoint_every_n_steps=2",
    "trainer.log_every_n_steps=1",
    "data.seq_len=64",
    "data.batch_size=4",
    "data.windows_per_epoch=16",
    "data.max_val_windows=8",
    "model.d_model=32",
    "model.n_layers=2",
    "model.num_heads=2",
    "model.chunk_size=16",
    "optim.warmup_steps=2",
]


def biolm(*args: str) -> subprocess.CompletedProcess:
    """Run the console entry point in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "biolm.cli.main", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", "dna", "--no-progress", f"run_root={root}", "name=tiny", *TINY]) == 0
    return root / "tiny"


def test_train_writes_a_complete_run_directory(trained_run):
    for name in [
        "config.yaml",
        "metrics.csv",
        "summary.json",
        "checkpoints/last.ckpt",
        "model/model.safetensors",
    ]:
        assert (trained_run / name).is_file(), name
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["steps"] == 6
    assert 7 * 64 < summary["val_targets"] <= 8 * 64  # 8 windows; the last one may be short
    assert 1.0 < summary["markov_ppl"] < 4.5 and 1.0 < summary["val_ppl"] < 20
    assert summary["tokens_per_second"] > 0
    header = (trained_run / "metrics.csv").read_text().splitlines()[0]
    assert "val_loss" in header and "train_loss" in header


def test_resume_continues_the_run(trained_run, tmp_path):
    # Work on a copy so that other tests see the original run.
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    assert main(["train", "dna", "--no-progress", "--resume", str(run), "trainer.max_steps=9"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 9
    steps = [int(line.split(",")[1]) for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert max(steps) >= 8 and steps == sorted(steps)


def test_new_run_never_overwrites(trained_run):
    assert (
        main(
            [
                "train",
                "dna",
                "--no-progress",
                f"run_root={trained_run.parent}",
                "name=tiny",
                *TINY[:1],
                "trainer.max_steps=1",
                *TINY[3:],
            ]
        )
        == 0
    )
    assert (trained_run.parent / "tiny-2" / "model").is_dir()


def test_load_embed_and_generate(trained_run, tmp_path):
    import biolm

    model = biolm.load(trained_run / "model")
    assert model.tokenizer.kind == "dna"
    fasta = tmp_path / "in.fa"
    fasta.write_text(">b second\nACGTTGCA\n>a\nacgtacgtacgtNNNN\n>c\nGGGGGGGGGGCCCCC\n")
    out = tmp_path / "emb.npy"
    assert main(["embed", str(trained_run / "model"), str(fasta), "-o", str(out), "--no-progress"]) == 0
    vectors = np.load(out)
    assert vectors.shape == (3, 32) and np.isfinite(vectors).all()
    assert out.with_suffix(".ids.txt").read_text().split() == ["b", "a", "c"]
    # Same vectors one at a time (batching with padding must not change them).
    single = tmp_path / "one.npy"
    (tmp_path / "one.fa").write_text(">a\nacgtacgtacgtNNNN\n")
    assert (
        main(
            [
                "embed",
                str(trained_run / "model"),
                str(tmp_path / "one.fa"),
                "-o",
                str(single),
                "--no-progress",
            ]
        )
        == 0
    )
    np.testing.assert_allclose(np.load(single)[0], vectors[1], rtol=1e-5, atol=1e-6)

    fa_out = tmp_path / "gen.fa"
    args = [
        "generate",
        str(trained_run / "model"),
        "-n",
        "3",
        "--length",
        "50",
        "-o",
        str(fa_out),
        "--no-progress",
    ]
    assert main(args) == 0
    lines = fa_out.read_text().splitlines()
    assert lines[0::2] == [">sample_1", ">sample_2", ">sample_3"]
    assert all(len(seq) == 50 and set(seq) <= set("ACGTN") for seq in lines[1::2])
    again = tmp_path / "gen2.fa"
    assert main([*args[:-3], "-o", str(again), "--no-progress"]) == 0
    assert again.read_text() == fa_out.read_text()  # seeded


def test_chunked_embedding_equals_one_pass(trained_run):
    import biolm
    from biolm.inference.embed_ids import embed_ids

    model = biolm.load(trained_run / "model")
    ids = [model.tokenizer.encode("ACGTTGCAAT" * 30), model.tokenizer.encode("GATTACA" * 11)]
    whole = embed_ids(model, ids, chunk_len=10_000, progress=False)
    chunked = embed_ids(model, ids, chunk_len=7, batch_tokens=64, progress=False)
    np.testing.assert_allclose(chunked, whole, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty file"),
        (">x\n" + "ACGTJACGT\n" * 30, "record 'x': invalid character 'J' at position 5"),
    ],
)
def test_train_on_bad_fasta_is_a_one_line_error(tmp_path, content, message):
    path = tmp_path / "user.fa"
    path.write_text(content)
    result = biolm("train", "dna", f"data.path={path}", f"run_root={tmp_path}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr and str(path) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_train_on_missing_file_and_unknown_key(tmp_path):
    for args, message in [
        ([f"data.path={tmp_path}/nope.fa"], "file not found"),
        (["trainer.max_stepz=3"], "unknown config key 'trainer.max_stepz'"),
    ]:
        result = biolm("train", "dna", f"run_root={tmp_path}", *args)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing half-made


def test_embed_errors_are_one_line(trained_run, tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text(">ok\nACGT\n>oops\nACXT\n")
    result = biolm("embed", str(trained_run / "model"), str(bad), "-o", str(tmp_path / "e.npy"))
    assert result.returncode == 2 and "record 'oops'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "e.npy").exists()
    result = biolm("embed", str(tmp_path / "no_model"), str(bad), "-o", str(tmp_path / "e.npy"))
    assert result.returncode == 2 and "model directory not found" in result.stderr


def test_help_explains_each_command():
    for command in ["train", "embed", "generate", "info"]:
        result = biolm(command, "--help")
        assert result.returncode == 0 and "usage: biolm " + command in result.stdout


def test_info_lists_each_kernel_op_with_its_backend(capsys):
    assert main(["info", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines() if line.startswith("  ")]
    assert ["mlstm", "torch", "auto:", "no", "CUDA", "(device", "is", "cpu)"] in lines


def test_info_describes_a_model_directory(tmp_path, capsys):
    from biolm.models import DNA_COMPLEMENT
    from biolm.models.io import save
    from tests.inference.helpers import tiny_model, tokenizer_of

    causal = tiny_model(tokenizer_of("protein"))
    masked = tiny_model(
        tokenizer_of("dna"), bidirectional=True, rc_equivariant=True, complement=DNA_COMPLEMENT
    )
    for name, model in [("causal", causal), ("masked", masked)]:
        save(model, model.tokenizer, tmp_path / name)
    assert main(["info", str(tmp_path / "causal")]) == 0
    section = capsys.readouterr().out.split("\nmodel ")[-1].splitlines()[1:]
    rows = dict(line.split(None, 1) for line in section)
    assert rows["domain"] == "protein (31 tokens)"
    assert rows["blocks"] == "2 of pattern 'm', d_model 32, 2 heads"
    assert rows["parameters"] == f"{causal.num_parameters():,}"
    assert rows["use"] == "causal: embed, score, generate"
    assert main(["info", str(tmp_path / "masked")]) == 0
    assert (
        "use         bidirectional and RC-equivariant: embed and score; cannot generate"
        in capsys.readouterr().out
    )
    # A damaged directory is the one-line error embed and generate give.
    (tmp_path / "causal" / "model.safetensors").unlink()
    assert main(["info", str(tmp_path / "causal")]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("model.safetensors: missing; the model directory is incomplete")
    )
