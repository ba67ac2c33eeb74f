"""Hostile model directories, training configs and numeric edges through the real `biolm` command.

Issue 18, item 3 (helper B's part): each case is `biolm embed`, `biolm generate` or `biolm train` in a
fresh interpreter, with a tiny model, and ends in a correct result or a clean refusal (exit 2, one
error line naming the file, record, flag or key, no traceback) that leaves the output directory as
it was. Refused model-directory cases write to an output file that exists before (it must not be
touched); refused numeric cases to one that does not (it must not appear); refused training configs
to a run root that already holds a run (no new run directory may appear).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from biolm.models.io import CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, load
from tests.robustness.cli_harness import (
    TINY_TRAIN,
    assert_clean_error,
    assert_success,
    assert_unchanged,
    earlier_output,
    run_biolm,
    snapshot,
)

TIMEOUT = 120  # seconds; a case that runs longer hangs, which is a failure of biolm
FAMILY = ">p1\nMKTAYIAKQRQISFVKSHFSRQ\n>p2\nMKTAYIAKQRQLSFVKSHF\n"
MOLECULES = "CCO\nc1ccccc1\n"
DNA = ">d1\nACGTACGGTA\n"


def read_fasta(path: Path) -> list[str]:
    return [block.split("\n", 1)[1].replace("\n", "") for block in path.read_text().split(">")[1:]]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, text[:300])
    path.write_text(text.replace(old, new, 1))


def set_json(path: Path, key: str, value) -> None:
    data = json.loads(path.read_text())
    data[key] = value
    path.write_text(json.dumps(data))


@pytest.fixture
def out_dir(tmp_path) -> Path:
    """An output folder that already holds the file each refused case is asked to write."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("samples.fa", "emb.npy"):
        earlier_output(out / name)
    return out


@pytest.fixture
def inputs(tmp_path) -> dict[str, Path]:
    files = {"protein": ("family.fa", FAMILY), "smiles": ("mols.smi", MOLECULES), "dna": ("dna.fa", DNA)}
    paths = {}
    for kind, (name, text) in files.items():
        paths[kind] = tmp_path / name
        paths[kind].write_text(text)
    return paths


# --- model directories -----------------------------------------------------------------------------------


def _copy(model_dirs, kind: str, root: Path) -> Path:
    return Path(shutil.copytree(model_dirs[kind], root / f"{kind}_model"))


def _missing_weights(d, dirs):
    (d / WEIGHTS_FILE).unlink()


def _truncated_weights(d, dirs):
    data = (d / WEIGHTS_FILE).read_bytes()
    (d / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])


def _nan_weight(d, dirs):
    tensors = load_file(d / WEIGHTS_FILE)
    tensors["blocks.0.layer.fgate.weight"][0, 0] = float("nan")
    save_file(tensors, d / WEIGHTS_FILE)


def _huge_vocabulary(d, dirs):
    edit(d / CONFIG_FILE, "  vocab_size: 11\n", "  vocab_size: 100000000000\n")


def _unknown_setting(d, dirs):
    edit(d / CONFIG_FILE, "  d_model: 32\n", "  d_model: 32\n  flux_capacitor: 3\n")


def _mistyped_setting(d, dirs):
    edit(d / CONFIG_FILE, "  d_model: 32\n", "  d_modle: 32\n")


def _unknown_top_level_key(d, dirs):
    (d / CONFIG_FILE).write_text((d / CONFIG_FILE).read_text() + "quantization: int4\n")


def _newer_config_version(d, dirs):
    edit(d / CONFIG_FILE, "format_version: 1", "format_version: 2")


def _newer_tokenizer_version(d, dirs):
    set_json(d / TOKENIZER_FILE, "format_version", 4)


def _tokenizer_kind_a_list(d, dirs):
    set_json(d / TOKENIZER_FILE, "kind", ["dna"])


def _tokenizer_of(kind):
    def damage(d, dirs):
        shutil.copy(dirs[kind] / TOKENIZER_FILE, d / TOKENIZER_FILE)

    return damage


# (model kind, damage, command, error parts)
DAMAGED = {
    "weights missing": ("dna", _missing_weights, "embed", [WEIGHTS_FILE, "missing"]),
    "weights truncated": ("dna", _truncated_weights, "generate", [WEIGHTS_FILE, "truncated"]),
    # Sampled NNNN... and embedded NaNs before, without a word.
    "a NaN weight": ("dna", _nan_weight, "embed", [WEIGHTS_FILE, "blocks.0.layer.fgate.weight", "NaN"]),
    # A config asking for 12.8 TB of embedding: the allocator's RuntimeError traceback before.
    "a config far larger than its weights": (
        "dna",
        _huge_vocabulary,
        "generate",
        [WEIGHTS_FILE, "do not fit", "[100000000000, 32] by config.yaml"],
    ),
    "unknown setting": ("dna", _unknown_setting, "generate", [CONFIG_FILE, "flux_capacitor", "newer biolm"]),
    "mistyped setting": ("dna", _mistyped_setting, "embed", [CONFIG_FILE, "d_modle", "did you mean d_model"]),
    "unknown top-level key": ("dna", _unknown_top_level_key, "generate", [CONFIG_FILE, "quantization"]),
    "newer config format": ("dna", _newer_config_version, "embed", [CONFIG_FILE, "version 2", "newer biolm"]),
    "newer tokenizer format": (
        "dna",
        _newer_tokenizer_version,
        "generate",
        [TOKENIZER_FILE, "format_version 4"],
    ),
    # A TypeError traceback (unhashable list) before.
    "tokenizer kind not a string": (
        "dna",
        _tokenizer_kind_a_list,
        "embed",
        [TOKENIZER_FILE, "'kind' must be a string"],
    ),
    # 31 protein tokens for 11 DNA ids; 11 DNA tokens for the SMILES model's ids (this one sampled ids the
    # DNA tokenizer could not decode: a ValueError traceback).
    "protein tokenizer in a DNA model": (
        "dna",
        _tokenizer_of("protein"),
        "generate",
        [TOKENIZER_FILE, "protein tokenizer", "different models"],
    ),
    "DNA tokenizer in a SMILES model": (
        "smiles",
        _tokenizer_of("dna"),
        "generate",
        [TOKENIZER_FILE, "dna tokenizer", "different models"],
    ),
}


def _command(command: str, model: Path, inputs: dict, out: Path) -> list:
    if command == "embed":
        return ["embed", model, inputs["dna"], "-o", out / "emb.npy", "--no-progress"]
    return ["generate", model, "-o", out / "samples.fa", "-n", 2, "--length", 5, "--no-progress"]


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_model_directories(model_dirs, tmp_path, inputs, out_dir, case):
    kind, damage, command, parts = DAMAGED[case]
    model = _copy(model_dirs, kind, tmp_path)
    damage(model, model_dirs)
    before = snapshot(out_dir)
    proc = run_biolm(*_command(command, model, inputs, out_dir), timeout=TIMEOUT)
    assert_clean_error(proc, *parts)
    assert_unchanged(out_dir, before)


def test_a_model_trained_with_triton_runs_on_any_device(model_dirs, tmp_path):
    """Defined: the weights are the same on every backend, so a model saved with model.backend=triton
    runs off CUDA with backend 'auto' and a warning (a RuntimeError traceback at the first step before)."""
    model = _copy(model_dirs, "dna", tmp_path)
    edit(model / CONFIG_FILE, "backend: auto", "backend: triton")
    outs, stderr = {}, {}
    for name, directory in (("triton", model), ("auto", model_dirs["dna"])):
        outs[name] = tmp_path / f"{name}.fa"
        proc = run_biolm(
            "generate", directory, "-o", outs[name], "-n", 2, "--length", 12, "--no-progress", timeout=TIMEOUT
        )
        assert_success(proc)
        stderr[name] = proc.stderr
    if not torch.cuda.is_available():
        assert "model.backend 'triton' needs a CUDA device" in stderr["triton"]
        assert outs["triton"].read_bytes() == outs["auto"].read_bytes()  # both ran the torch kernels


def _not_there(tmp_path, model_dirs):
    return tmp_path / "no_such_model", ["no_such_model", "not found"]


def _an_empty_directory(tmp_path, model_dirs):
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty", ["empty", f"not a biolm model directory (no {CONFIG_FILE})"]


def _a_file(tmp_path, model_dirs):
    (tmp_path / "notes.txt").write_text("not a model\n")
    return tmp_path / "notes.txt", ["notes.txt", "not a directory"]


def _the_weights_file(tmp_path, model_dirs):
    model = _copy(model_dirs, "dna", tmp_path)
    return model / WEIGHTS_FILE, [WEIGHTS_FILE, f"give the directory {model}"]


def _a_run_directory(tmp_path, model_dirs):
    run = tmp_path / "run"
    run.mkdir()
    (run / CONFIG_FILE).write_text("name: dna\nmodel:\n  d_model: 32\n")  # the run's training config
    shutil.copytree(model_dirs["dna"], run / "model")
    return run, [f"{run / CONFIG_FILE}", "run directory", f"model directory {run / 'model'}"]


@pytest.mark.parametrize(
    "where",
    [_not_there, _an_empty_directory, _a_file, _the_weights_file, _a_run_directory],
    ids=lambda f: f.__name__[1:],
)
def test_model_paths_that_are_not_model_directories(model_dirs, tmp_path, inputs, out_dir, where):
    model, parts = where(tmp_path, model_dirs)
    before = snapshot(out_dir)
    proc = run_biolm(*_command("generate", model, inputs, out_dir), timeout=TIMEOUT)
    assert_clean_error(proc, *parts)
    assert_unchanged(out_dir, before)


# --- a model of one domain given another domain's input --------------------------------------------------

CROSSED = {
    "DNA model embeds SMILES": (
        "dna",
        lambda i, o: ["embed", "MODEL", i["smiles"], "-o", o / "emb.npy"],
        ["mols.smi", "record 'line_1'", "invalid character 'O'"],
    ),
    "DNA model embeds proteins": (
        "dna",
        lambda i, o: ["embed", "MODEL", i["protein"], "-o", o / "emb.npy"],
        ["family.fa", "record 'p1'", "invalid character 'I'"],
    ),
    "DNA model, protein --context": (
        "dna",
        lambda i, o: ["generate", "MODEL", "--context", i["protein"], "-o", o / "samples.fa"],
        ["family.fa", "needs a protein or SMILES model"],
    ),
    "DNA model, molecule --context": (
        "dna",
        lambda i, o: ["generate", "MODEL", "--context", i["smiles"], "-o", o / "samples.fa"],
        ["mols.smi", "needs a protein or SMILES model"],
    ),
    "DNA model, protein --prompt": (
        "dna",
        lambda i, o: ["generate", "MODEL", "--prompt", "MKWL", "-o", o / "samples.fa"],
        ["--prompt", "invalid character 'L'"],
    ),
    "DNA model, SMILES --prompt": (
        "dna",
        lambda i, o: ["generate", "MODEL", "--prompt", "c1ccccc1", "-o", o / "samples.fa"],
        ["--prompt", "invalid character '1'"],
    ),
}


@pytest.mark.parametrize("case", list(CROSSED))
def test_a_model_given_another_domains_input(model_dirs, inputs, out_dir, case):
    kind, args, parts = CROSSED[case]
    before = snapshot(out_dir)
    args = [model_dirs[kind] if a == "MODEL" else a for a in args(inputs, out_dir)]
    proc = run_biolm(*args, "--no-progress", timeout=TIMEOUT)
    line = assert_clean_error(proc, *parts)
    assert "unknown=" not in line  # the tokenizer's hint names a Python argument no command has
    assert_unchanged(out_dir, before)


def test_a_protein_model_reads_dna_as_protein(model_dirs, inputs, tmp_path):
    """Defined: A, C, G, T and N are amino-acid letters (Ala, Cys, Gly, Thr, Asn), so a DNA FASTA is a
    valid protein input; a protein model embeds it as a protein, as it would any other."""
    out = tmp_path / "emb.npy"
    assert_success(run_biolm("embed", model_dirs["protein"], inputs["dna"], "-o", out, timeout=TIMEOUT))
    vectors = np.load(out)
    assert vectors.shape == (1, 32) and np.isfinite(vectors).all()
    assert (tmp_path / "emb.ids.txt").read_text().split() == ["d1"]


# --- numeric (and device) edges of `biolm generate` ------------------------------------------------------

REFUSED_NUMBERS = [
    (["-n", "0"], "--num must be at least 1, got 0"),
    (["-n", "-1"], "--num must be at least 1, got -1"),
    (["--length", "0"], "--max-new-tokens must be at least 1, got 0"),
    (["--length", "-5"], "--max-new-tokens must be at least 1, got -5"),
    (["--temperature", "-1"], "--temperature must be 0 (greedy) or a positive finite number, got -1.0"),
    # NaN passed `temperature <= 0`, infinity divides the banned tokens' -inf into NaN: samples of NaNs.
    (["--temperature", "nan"], "--temperature must be 0 (greedy) or a positive finite number, got nan"),
    (["--temperature", "inf"], "--temperature must be 0 (greedy) or a positive finite number, got inf"),
    (["--top-p", "0"], "--top-p must be in (0, 1], got 0.0"),
    (["--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
    (["--top-k", "0"], "--top-k must be at least 1, got 0"),
    (["--min-p", "-0.1"], "--min-p must be in [0, 1], got -0.1"),
    # numpy's ValueError traceback before.
    (["--seed", "-1"], "--seed must be at least 0, got -1"),
    # Both were reported as a damaged model.safetensors before; cuda:99 is refused with or without CUDA.
    (["--device", "nonsense"], "--device: 'nonsense' is not a torch device"),
    (["--device", "cuda:99"], "--device cuda:99: torch sees"),
]


@pytest.mark.parametrize("extra, message", REFUSED_NUMBERS, ids=[" ".join(e) for e, _ in REFUSED_NUMBERS])
def test_numeric_edges_that_are_refused(model_dirs, tmp_path, extra, message):
    out = tmp_path / "samples.fa"
    proc = run_biolm("generate", model_dirs["dna"], "-o", out, "--no-progress", *extra, timeout=TIMEOUT)
    assert_clean_error(proc, message)
    assert not out.exists() and list(tmp_path.iterdir()) == []


REFUSED_EMBED_NUMBERS = [
    # --chunk-len -1 wrote all-zero embeddings without a word; 0 was a ValueError traceback.
    (["--chunk-len", "-1"], "--chunk-len must be at least 1, got -1"),
    (["--chunk-len", "0"], "--chunk-len must be at least 1, got 0"),
    (["--batch-tokens", "0"], "--batch-tokens must be at least 1, got 0"),
]


@pytest.mark.parametrize(
    "extra, message", REFUSED_EMBED_NUMBERS, ids=[" ".join(e) for e, _ in REFUSED_EMBED_NUMBERS]
)
def test_embed_numeric_edges_that_are_refused(model_dirs, inputs, tmp_path, extra, message):
    out = tmp_path / "out"
    out.mkdir()
    proc = run_biolm(
        "embed", model_dirs["dna"], inputs["dna"], "-o", out / "emb.npy", *extra, timeout=TIMEOUT
    )
    assert_clean_error(proc, message)
    assert list(out.iterdir()) == []


def greedy_path(model_dir: Path, length: int) -> list[str]:
    """The argmax continuation of `<bos>` under the stop rules of `biolm generate`, read with full
    forward passes (not the recurrent steps that generation uses)."""
    model = load(model_dir)
    tok = model.tokenizer
    stops = [] if tok.kind == "dna" else [tok.eos_id, tok.sep_id]
    banned = [i for i in tok.special_ids if i not in stops]
    ids = [tok.bos_id]
    with torch.no_grad():
        for _ in range(length):
            logits = model(torch.tensor([ids])).logits[0, -1].double()
            logits[banned] = float("-inf")
            ids.append(int(logits.argmax()))
            if ids[-1] in stops:
                ids.pop()
                break
    return [tok.decode(np.array(ids[1:]))]


def test_temperature_0_is_greedy_and_the_same_for_every_seed(model_dirs, tmp_path):
    outs = [tmp_path / "seed_0.fa", tmp_path / "seed_9.fa"]
    for out, seed in zip(outs, [0, 9], strict=True):
        proc = run_biolm(
            "generate", model_dirs["dna"], "-o", out, "-n", 3, "--length", 24, "--temperature", 0,
            "--seed", seed, "--no-progress", timeout=TIMEOUT,
        )  # fmt: skip
        assert_success(proc)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert read_fasta(outs[0]) == greedy_path(model_dirs["dna"], 24) * 3


def test_greedy_protein_samples_are_deduplicated_to_one(model_dirs, tmp_path):
    out = tmp_path / "samples.fa"
    proc = run_biolm(
        "generate", model_dirs["protein"], "-o", out, "-n", 4, "--length", 16, "--temperature", 0,
        "--no-progress", timeout=TIMEOUT,
    )  # fmt: skip
    assert_success(proc)
    expected = [seq for seq in greedy_path(model_dirs["protein"], 16) if seq]  # an empty one is dropped
    assert read_fasta(out) == expected


def test_filters_at_their_no_op_values_change_nothing(model_dirs, tmp_path):
    """--help: top-k at or above the vocabulary size, top-p 1 and min-p 0 are no filter."""
    plain, filtered = tmp_path / "plain.fa", tmp_path / "filtered.fa"
    base = ["generate", model_dirs["dna"], "-n", 3, "--length", 16, "--seed", 3, "--no-progress"]
    assert_success(run_biolm(*base, "-o", plain, timeout=TIMEOUT))
    no_ops = ["--top-k", 100000, "--top-p", 1, "--min-p", 0]
    assert_success(run_biolm(*base, *no_ops, "-o", filtered, timeout=TIMEOUT))
    assert plain.read_bytes() == filtered.read_bytes()


# --- training configs ------------------------------------------------------------------------------------

REFUSED_CONFIGS = [
    # s, a and t blocks split d_model (16 in TINY_TRAIN) into heads of even width.
    (
        ["model.pattern=s", "model.num_heads=3"],
        "model.d_model (16) must be a multiple of 2 * model.num_heads",
    ),
    # These four made a run directory, then failed with a traceback (in the kernels, in AdamW).
    (["model.chunk_size=0"], "model.chunk_size must be at least 1, got 0"),
    (["optim.lr=-1"], "optim.lr must be >= 0"),
    (["optim.lr=nan"], "optim.lr must be >= 0"),
    (["optim.beta1=1.5"], "optim.beta1 must be in [0, 1), got 1.5"),
    # Trained silently before.
    (["optim.weight_decay=-1"], "optim.weight_decay must be >= 0, got -1.0"),
]


@pytest.mark.parametrize("overrides, message", REFUSED_CONFIGS, ids=[" ".join(o) for o, _ in REFUSED_CONFIGS])
def test_training_configs_refused_before_a_run_directory_exists(tmp_path, overrides, message):
    runs = tmp_path / "runs"
    (runs / "t").mkdir(parents=True)
    (runs / "t" / "metrics.csv").write_text("step,train_loss\n")  # an earlier run's; must survive
    before = snapshot(runs)
    args = [*TINY_TRAIN, *overrides, f"run_root={runs}", "name=t", "--no-progress"]
    assert_clean_error(run_biolm("train", "dna", *args, timeout=TIMEOUT), message)
    assert_unchanged(runs, before)
    assert sorted(p.name for p in runs.iterdir()) == ["t"]


def test_training_edges_that_are_defined(tmp_path):
    """lr 0 trains nothing but runs (data, validation, export: the weights it starts with); mLSTM blocks
    take a num_heads that does not divide d_model (their inner width is rounded up to fit)."""
    runs = tmp_path / "runs"
    proc = run_biolm(
        "train", "dna", *TINY_TRAIN, "optim.lr=0", "model.num_heads=3", f"run_root={runs}", "name=t",
        "--no-progress", timeout=TIMEOUT,
    )  # fmt: skip
    assert_success(proc)
    model = load(runs / "t" / "model")
    assert (model.config.d_model, model.config.num_heads) == (16, 3)
