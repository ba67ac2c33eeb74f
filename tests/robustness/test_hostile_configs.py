"""Hostile model files, configs, checkpoints and devices through the real `biolm` command (issue 27, items
3, 5 and 7).

- Model files and checkpoints are read with a size bound and a regular-file check: a `tokenizer.json`,
  `config.yaml`, `model.safetensors` or `last.ckpt` that is `/dev/zero`, a FIFO or a huge (sparse) file is
  refused in one line naming it, where it filled the memory or hung before.
- Configs (training configs, overrides, a model's `config.yaml`) go through the one YAML reader
  (`biolm.io.yaml_files`): duplicate keys, alias bombs, recursive aliases and failing interpolations are
  one line naming the file (or override) and the key; a model's settings that make every output NaN are
  refused when it loads, and by the training config's own check.
- A device that cannot hold the model (`--device meta`, `xla`, ...) is named as such, not reported as
  damaged weights.

Every command runs under an address-space limit (`MEMORY_LIMIT`), so a case that regresses to reading
`/dev/zero` whole is a failed test, not a machine out of memory; refused cases must leave the output
folder (or the run root) as it was.
"""

from __future__ import annotations

import os
import resource
import shutil
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from biolm.models.io import CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, save
from tests.inference.helpers import tiny_model, tokenizer_of
from tests.robustness.cli_harness import (
    TINY_TRAIN,
    assert_clean_error,
    assert_success,
    assert_unchanged,
    run_biolm,
    snapshot,
)

TIMEOUT = 60  # seconds; every case ends in a few, a hung reader (a FIFO) runs into this
MEMORY_LIMIT = 4 << 30  # bytes of address space for each command: torch needs about 1.5 GB of it
DNA = ">d1\nACGTACGGTA\n"

# A "billion laughs": 9 lines whose aliases expand to 9^9 (387 million) values.
BOMB_LEVELS = ["&a [" + ", ".join(["0"] * 9) + "]"] + [
    f"&{name} [" + ", ".join([f"*{prev}"] * 9) + "]"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
]


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def biolm(*args, timeout: float = TIMEOUT, **kwargs):
    """`biolm ARGS...` under `MEMORY_LIMIT`, on the CPU: a CUDA context reserves more address space than
    the limit allows, and no case here needs a GPU."""
    env = {"CUDA_VISIBLE_DEVICES": "", **kwargs.pop("env", {})}
    return run_biolm(*args, timeout=timeout, preexec_fn=_limit_memory, env=env, **kwargs)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, text[:300])
    path.write_text(text.replace(old, new, 1))


def replace_with(path: Path, kind: str) -> None:
    """`path` made a link to /dev/zero, a FIFO, a link to nothing, or a sparse file of 5 GB."""
    path.unlink()
    if kind == "/dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "FIFO":
        os.mkfifo(path)
    elif kind == "dangling link":
        path.symlink_to(path.parent / "no_such_file")
    elif kind == "5 GB":
        with open(path, "wb") as handle:
            handle.truncate(5 << 30)  # sparse: no disk space used
    else:
        raise ValueError(kind)


@pytest.fixture
def out_dir(tmp_path) -> Path:
    """An empty output folder: a refused command must leave nothing in it."""
    out = tmp_path / "out"
    out.mkdir()
    return out


@pytest.fixture
def dna_fasta(tmp_path) -> Path:
    path = tmp_path / "dna.fa"
    path.write_text(DNA)
    return path


@pytest.fixture(scope="module")
def x_model_dir(tmp_path_factory) -> Path:
    """A tiny DNA model of xLSTM-7B blocks (the blocks that use model.gate_soft_cap)."""
    model = tiny_model(tokenizer_of("dna"), pattern="x")
    return save(model, model.tokenizer, tmp_path_factory.mktemp("x_model") / "dna_x")


def _command(command: str, model: Path, source: Path, out: Path) -> list:
    if command == "embed":
        return ["embed", model, source, "-o", out / "emb.npy", "--no-progress"]
    if command == "generate":
        return ["generate", model, "-o", out / "samples.fa", "-n", 2, "--length", 5, "--no-progress"]
    return ["info", model]


# --- files of a model directory (item 3) -----------------------------------------------------------------

# (file, what it becomes, command, error parts)
MODEL_FILES = {
    # embed and generate grew to 23 GB before (a MemoryError traceback under a memory limit); info too.
    "tokenizer.json -> /dev/zero, embed": (TOKENIZER_FILE, "/dev/zero", "embed", ["character device"]),
    "tokenizer.json -> /dev/zero, generate": (TOKENIZER_FILE, "/dev/zero", "generate", ["character device"]),
    "tokenizer.json -> /dev/zero, info": (TOKENIZER_FILE, "/dev/zero", "info", ["character device"]),
    # Hung for good before.
    "tokenizer.json a FIFO": (TOKENIZER_FILE, "FIFO", "embed", ["FIFO"]),
    # Read whole before: a MemoryError traceback.
    "tokenizer.json of 5 GB": (TOKENIZER_FILE, "5 GB", "generate", ["bytes", "67,108,864"]),
    # These three were "not a biolm model directory (no config.yaml)" before: the file is there.
    "config.yaml -> /dev/zero": (CONFIG_FILE, "/dev/zero", "embed", ["character device"]),
    "config.yaml a FIFO": (CONFIG_FILE, "FIFO", "info", ["FIFO"]),
    "config.yaml of 5 GB": (CONFIG_FILE, "5 GB", "generate", ["bytes", "1,048,576"]),
    # "missing; the model directory is incomplete" before (safetensors would mmap it).
    "model.safetensors -> /dev/zero": (WEIGHTS_FILE, "/dev/zero", "generate", ["character device"]),
}


@pytest.mark.parametrize("case", list(MODEL_FILES))
def test_model_files_that_are_not_regular_files_or_too_large(model_dirs, tmp_path, dna_fasta, out_dir, case):
    name, kind, command, parts = MODEL_FILES[case]
    model = Path(shutil.copytree(model_dirs["dna"], tmp_path / "model"))
    replace_with(model / name, kind)
    before = snapshot(out_dir)
    proc = biolm(*_command(command, model, dna_fasta, out_dir))
    assert_clean_error(proc, str(model / name), *parts)
    assert_unchanged(out_dir, before)


# --- a model's config.yaml (item 5) ----------------------------------------------------------------------


def _duplicate_setting(d: Path) -> None:
    edit(d / CONFIG_FILE, "  chunk_size: 64\n", "  chunk_size: 64\n  chunk_size: 16\n")


def _duplicate_top_level_key(d: Path) -> None:
    edit(d / CONFIG_FILE, "format_version: 1\n", "format_version: 1\nformat_version: 1\n")


def _interpolated_setting(d: Path) -> None:
    edit(d / CONFIG_FILE, "  num_heads: 2\n", "  num_heads: ${n_layers}\n")


def _alias_bomb(d: Path) -> None:
    edit(d / CONFIG_FILE, "  complement: null\n", f"  complement: [{', '.join(BOMB_LEVELS)}]\n")


def _setting(old: str, new: str):
    def damage(d: Path) -> None:
        edit(d / CONFIG_FILE, f"  {old}\n", f"  {new}\n")

    return damage


# (model, damage, command, error parts)
MODEL_CONFIGS = {
    # PyYAML kept the last of the two without a word: these two ran, exit 0.
    "duplicate setting": ("dna", _duplicate_setting, "embed", ["duplicate key 'model.chunk_size' at line"]),
    "duplicate top-level key": (
        "dna",
        _duplicate_top_level_key,
        "generate",
        ["duplicate key 'format_version'"],
    ),
    # OmegaConf resolved it to n_layers (2) without a word: exit 0.
    "interpolation in a setting": ("dna", _interpolated_setting, "embed", ["model.num_heads", "${n_layers}"]),
    # OmegaConf expanded 387 million values: past a minute of CPU and gigabytes of memory (timed out).
    "alias bomb in a setting": ("dna", _alias_bomb, "embed", ["model.complement", "alias"]),
    # Exit 0 with all-NaN embeddings, and samples of NNNN.
    "norm_eps -1, embed": (
        "dna",
        _setting("norm_eps: 1.0e-05", "norm_eps: -1.0"),
        "embed",
        ["model.norm_eps"],
    ),
    "norm_eps -1, generate": (
        "dna",
        _setting("norm_eps: 1.0e-05", "norm_eps: -1.0"),
        "generate",
        ["model.norm_eps", "-1.0"],
    ),
    # All-NaN embeddings, exit 0.
    "gate_soft_cap inf": (
        "x",
        _setting("gate_soft_cap: 15.0", "gate_soft_cap: .inf"),
        "embed",
        ["gate_soft_cap"],
    ),
    # ValueError traceback (cannot convert float NaN to integer).
    "proj_factor nan": (
        "dna",
        _setting("proj_factor: 2.0", "proj_factor: .nan"),
        "embed",
        ["model.proj_factor"],
    ),
}


@pytest.mark.parametrize("case", list(MODEL_CONFIGS))
def test_hostile_model_configs(model_dirs, x_model_dir, tmp_path, dna_fasta, out_dir, case):
    kind, damage, command, parts = MODEL_CONFIGS[case]
    source = x_model_dir if kind == "x" else model_dirs[kind]
    model = Path(shutil.copytree(source, tmp_path / "model"))
    damage(model)
    before = snapshot(out_dir)
    proc = biolm(*_command(command, model, dna_fasta, out_dir))
    assert_clean_error(proc, str(model / CONFIG_FILE), *parts)
    assert_unchanged(out_dir, before)


def test_a_model_config_that_is_fine_still_loads(model_dirs, tmp_path, dna_fasta):
    """The reader's checks leave a normal config alone: same embeddings as the directory `save` wrote."""
    out = tmp_path / "emb.npy"
    assert_success(biolm("embed", model_dirs["dna"], dna_fasta, "-o", out, "--no-progress"))
    vectors = np.load(out)
    assert vectors.shape == (1, 32) and np.isfinite(vectors).all()


# --- training configs and overrides (item 5) -------------------------------------------------------------

# (file text or None for the packaged config, overrides, error parts; "CONFIG" stands for the file)
TRAIN_CONFIGS = {
    # Each of these was a traceback (InterpolationKeyError, InterpolationResolutionError, ConstructorError).
    "interpolation of a missing key": (
        "name: ${nonexistent.key}\n",
        [],
        ["CONFIG", "key 'name'", "nonexistent.key"],
    ),
    "oc.decode of broken YAML": ("name: ${oc.decode:'[1, 2'}\n", [], ["CONFIG", "key 'name'"]),
    "override with an unset environment variable": (
        None,
        ["name=${oc.env:NOPE_NOT_SET}"],
        ["override 'name=${oc.env:NOPE_NOT_SET}'", "NOPE_NOT_SET", "key 'name'"],
    ),
    "duplicate top-level key": ("name: a\nname: b\n", [], ["CONFIG", "duplicate key 'name' at line 2"]),
    "duplicate nested key": (
        "model:\n  d_model: 16\n  d_model: 32\n",
        [],
        ["CONFIG", "duplicate key 'model.d_model' at line 3"],
    ),
    "billion laughs": (
        "".join(f"x{i}: {level}\n" for i, level in enumerate(BOMB_LEVELS)),
        [],
        ["CONFIG", "alias"],
    ),
    "recursive alias": ("name: &a [*a]\n", [], ["CONFIG", "recursive"]),
    # Trained a run named '${x}', whose saved config.yaml then failed to resume (a traceback).
    "escaped interpolation left in a value": ("name: \\${x}\n", [], ["CONFIG", "key 'name'", "${x}"]),
    # Made a run directory and trained: NaN losses (norm_eps 0 on a constant row, an infinite cap), or a
    # ValueError traceback (a NaN width factor).
    "model.norm_eps=0": (None, ["model.norm_eps=0"], ["model.norm_eps", "got 0.0"]),
    "model.norm_eps=-1": (None, ["model.norm_eps=-1"], ["model.norm_eps", "got -1.0"]),
    "model.gate_soft_cap=inf": (
        None,
        ["model.pattern=x", "model.gate_soft_cap=inf"],
        ["model.gate_soft_cap"],
    ),
    "model.ffn_factor=nan": (None, ["model.pattern=s", "model.ffn_factor=nan"], ["model.ffn_factor"]),
    "model.proj_factor=inf": (None, ["model.proj_factor=inf"], ["model.proj_factor"]),
}


@pytest.mark.parametrize("case", list(TRAIN_CONFIGS))
def test_hostile_training_configs(tmp_path, case):
    text, overrides, parts = TRAIN_CONFIGS[case]
    runs = tmp_path / "runs"
    (runs / "t").mkdir(parents=True)
    (runs / "t" / "metrics.csv").write_text("step,train_loss\n")  # an earlier run's; must survive
    before = snapshot(runs)
    args = ["train", "dna", *TINY_TRAIN, f"run_root={runs}", "--no-progress"]
    if text is not None:
        config = tmp_path / "my.yaml"
        config.write_text(text)
        args += ["--config", config]
    else:
        args.append("name=t")
    args += overrides
    proc = biolm(*args)
    assert_clean_error(proc, *[str(tmp_path / "my.yaml") if p == "CONFIG" else p for p in parts])
    assert_unchanged(runs, before)
    assert sorted(p.name for p in runs.iterdir()) == ["t"]


@pytest.mark.parametrize("kind", ["FIFO", "/dev/zero"])
def test_a_config_file_that_is_not_a_regular_file(tmp_path, kind):
    """--config FIFO (or /dev/zero) was "config file not found" before."""
    config = tmp_path / "my.yaml"
    config.write_text("name: t\n")
    replace_with(config, kind)
    proc = biolm("train", "dna", "--config", config, f"run_root={tmp_path / 'runs'}", "--no-progress")
    assert_clean_error(proc, str(config), "FIFO" if kind == "FIFO" else "character device")
    assert not (tmp_path / "runs").exists()


# --- checkpoints and init_from (item 3) ------------------------------------------------------------------


def _run_directory(root: Path) -> Path:
    """A run directory as `biolm train` leaves it, for --resume: its config and a checkpoints folder."""
    run = root / "run"
    (run / "checkpoints").mkdir(parents=True)
    config = OmegaConf.from_dotlist([*TINY_TRAIN, f"run_root={root}", "name=run"])
    (run / "config.yaml").write_text(OmegaConf.to_yaml(config))
    (run / "checkpoints" / "last.ckpt").write_bytes(b"placeholder")
    return run


CHECKPOINTS = {
    # A MemoryError traceback before (zipfile read /dev/zero whole).
    "/dev/zero": ["character device"],
    # Hung for good before.
    "FIFO": ["FIFO"],
    # A FileNotFoundError traceback before (sorting checkpoints by modification time).
    "dangling link": ["link to a missing file"],
}


@pytest.mark.parametrize("kind", list(CHECKPOINTS))
def test_resume_from_a_checkpoint_that_is_not_a_regular_file(tmp_path, kind):
    run = _run_directory(tmp_path)
    checkpoint = run / "checkpoints" / "last.ckpt"
    replace_with(checkpoint, kind)
    before = snapshot(run)
    proc = biolm("train", "dna", "--resume", run, "--no-progress")
    assert_clean_error(proc, str(checkpoint), *CHECKPOINTS[kind])
    assert_unchanged(run, before)


def test_resume_with_a_run_config_that_is_dev_zero(tmp_path):
    """ "not a run directory (no config.yaml)" before: the file is there, and is a device."""
    run = _run_directory(tmp_path)
    replace_with(run / "config.yaml", "/dev/zero")
    proc = biolm("train", "dna", "--resume", run, "--no-progress")
    assert_clean_error(proc, str(run / "config.yaml"), "character device")


def test_init_from_a_model_whose_tokenizer_is_dev_zero(model_dirs, tmp_path):
    """A MemoryError traceback before."""
    model = Path(shutil.copytree(model_dirs["dna"], tmp_path / "model"))
    replace_with(model / TOKENIZER_FILE, "/dev/zero")
    runs = tmp_path / "runs"
    proc = biolm("train", "dna", *TINY_TRAIN, f"init_from={model}", f"run_root={runs}", "--no-progress")
    assert_clean_error(proc, "init_from", str(model / TOKENIZER_FILE), "character device")
    assert not runs.exists()


# --- devices (item 7) ------------------------------------------------------------------------------------

# embed and generate said "model.safetensors: cannot read the weights (device ... is invalid); the file
# is damaged or truncated" before (xla: "the weights do not fit config.yaml").
DEVICES = [
    ("meta", "embed", ["--device meta", "no data"]),
    ("meta", "generate", ["--device meta", "no data"]),
    ("cpu:1", "embed", ["--device cpu:1", "one CPU device"]),
    ("xla", "generate", ["--device xla", "cannot hold or run"]),
    ("vulkan", "embed", ["--device vulkan", "cannot hold or run"]),
    # A RuntimeError traceback before.
    ("nonsense", "info", ["--device: 'nonsense' is not a torch device"]),
]


@pytest.mark.parametrize("device, command, parts", DEVICES, ids=[f"{d} {c}" for d, c, _ in DEVICES])
def test_a_device_that_cannot_run_the_model_is_named(model_dirs, dna_fasta, out_dir, device, command, parts):
    before = snapshot(out_dir)
    proc = biolm(*_command(command, model_dirs["dna"], dna_fasta, out_dir), "--device", device)
    line = assert_clean_error(proc, *parts)
    assert "damaged" not in line and WEIGHTS_FILE not in line
    assert_unchanged(out_dir, before)
