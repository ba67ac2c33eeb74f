"""Molecules too large for RDKit, through the real `biolm` command (issue 27, item 4).

RDKit's canonical writer recurses once per atom of a chain: a 20,000-atom SMILES (`'C' * 20000`)
overflowed the stack and killed `biolm embed`, `biolm generate --context`, `biolm eval probe` and
`biolm train chem` with a segmentation fault, and a 100,000-atom one kept RDKit busy for minutes in one C
call, so SIGTERM was not honoured. Every SMILES is now measured before RDKit sees it
(`biolm.io.smiles.smiles_too_large`: at most `MAX_SMILES_ATOMS` atoms, 1,000 by default, and 16
characters per atom of that; the environment variable `BIOLM_MAX_SMILES_ATOMS` sets another bound).
Outcomes pinned here:
- `embed`: one line naming the file, the record, the atom count, the bound and the variable; exit 2;
  the output untouched.
- a molecule set (`generate --context`, `train chem`) and a labelled table (`eval probe`) skip the
  molecule as they skip one RDKit cannot read, with a warning naming its line and the bound; a set of
  nothing but too-large molecules is one error line that says so.
- a generated sample over the bound counts as invalid.
- SIGTERM while RDKit works through molecules at the bound ends the command at once (exit 143).
- the bound is raised by its variable, and a bad value of it is one error line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from biolm.io.smiles import MAX_ATOMS_VARIABLE, MAX_SMILES_ATOMS
from biolm.models.io import save
from tests.inference.helpers import tiny_model, tokenizer_of
from tests.robustness.cli_harness import (
    TINY_TRAIN,
    assert_clean_error,
    assert_success,
    assert_unchanged,
    command,
    run_biolm,
    snapshot,
)

TIMEOUT = 60  # seconds; each case takes a few (before the bound: a crash, or minutes in one RDKit call)
SIGTERM_EXIT = 143
SIZES = [20_000, 100_000]  # atoms: RDKit's writer crashes from about 18,000; 100,000 also took minutes
SMALL = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "OCC(O)CO", "CCCC", "C1CCCCC1", "CC(C)O"] * 2
# The command's ChemDataWarning on stderr (the harness silences warnings; these are the user's news).
SHOW_WARNINGS = {"PYTHONWARNINGS": "ignore,default::UserWarning"}  # ChemDataWarning among them


def chain(atoms: int) -> str:
    return "C" * atoms


def many_open_rings(atoms: int) -> str:
    """A valid molecule of `atoms` atoms (odd) whose ring closures are all open at once: the slowest
    shape for RDKit's parser found at the bound (about 0.3 s at 1,000 atoms)."""
    half = (atoms - 1) // 2
    return "C" + "".join(f"C%({i})" for i in range(1, half + 1)) * 2


def molecule_file(path: Path, molecules: list[str]) -> Path:
    """`.smi` (SMILES and a name) or `.csv` (id,smiles) of `molecules`, named m1, m2, ..."""
    if path.suffix == ".csv":
        path.write_text("id,smiles\n" + "".join(f"m{i},{s}\n" for i, s in enumerate(molecules, 1)))
    else:
        path.write_text("".join(f"{s} m{i}\n" for i, s in enumerate(molecules, 1)))
    return path


def env(tmp_path: Path, **extra: str) -> dict:
    return {"BIOLM_CACHE_DIR": str(tmp_path / "cache"), **extra}


def warned_too_large(proc: subprocess.CompletedProcess, line: int) -> None:
    """The skip warning names the line, the bound and how to raise it."""
    warning = next((w for w in proc.stderr.splitlines() if f"line {line}:" in w), "")
    assert "too large for RDKit" in warning, proc.stderr[-3000:]
    assert f"{MAX_SMILES_ATOMS:,}" in warning and MAX_ATOMS_VARIABLE in warning, warning


# --- embed: refused in one line -----------------------------------------------------------------------


@pytest.mark.parametrize("atoms", SIZES)
@pytest.mark.parametrize("suffix", [".smi", ".csv"])
def test_embed_refuses_a_molecule_too_large_for_rdkit(model_dirs, tmp_path, suffix, atoms):
    source = molecule_file(tmp_path / f"big{suffix}", ["CCO", chain(atoms)])
    out = tmp_path / "out"
    out.mkdir()
    (out / "emb.npy").write_bytes(b"\x93NUMPY an earlier run's output")
    before = snapshot(tmp_path)
    proc = run_biolm(
        "embed", model_dirs["smiles"], source, "-o", out / "emb.npy", "--no-progress", timeout=TIMEOUT
    )
    assert_clean_error(
        proc, source.name, "record 'm2'", f"{atoms:,} atoms", f"{MAX_SMILES_ATOMS:,}", MAX_ATOMS_VARIABLE
    )
    assert_unchanged(tmp_path, before)


# --- molecule sets and labelled tables: skipped with a warning that says why ---------------------------


@pytest.mark.parametrize("atoms", SIZES)
@pytest.mark.parametrize("suffix", [".smi", ".csv"])
def test_generate_context_skips_a_molecule_too_large_for_rdkit(model_dirs, tmp_path, suffix, atoms):
    source = molecule_file(tmp_path / f"set{suffix}", [chain(atoms), *SMALL[:4]])
    out = tmp_path / "samples.smi"
    args = ["generate", model_dirs["smiles"], "--context", source, "-n", 2, "--max-new-tokens", 8]
    proc = run_biolm(*args, "-o", out, "--no-progress", timeout=TIMEOUT, env=env(tmp_path, **SHOW_WARNINGS))
    assert_success(proc)
    warned_too_large(proc, 2 if suffix == ".csv" else 1)
    assert out.is_file()


def test_generate_context_of_only_too_large_molecules_is_refused(model_dirs, tmp_path):
    source = molecule_file(tmp_path / "set.smi", [chain(20_000), chain(100_000)])
    out = tmp_path / "samples.smi"
    args = ["generate", model_dirs["smiles"], "--context", source, "-n", 2, "-o", out, "--no-progress"]
    proc = run_biolm(*args, timeout=TIMEOUT, env=env(tmp_path))
    assert_clean_error(proc, "set.smi", "no valid molecule", "2 too large for RDKit", MAX_ATOMS_VARIABLE)
    assert not out.exists()


@pytest.mark.parametrize("atoms", SIZES)
def test_eval_probe_skips_a_molecule_too_large_for_rdkit(model_dirs, tmp_path, atoms):
    rows = [(("C" * k) + "O", k) for k in range(1, 31)]
    rows.insert(5, (chain(atoms), 99))
    source = tmp_path / "labelled.csv"
    source.write_text("smiles,y\n" + "".join(f"{s},{y}\n" for s, y in rows))
    args = ["eval", "probe", model_dirs["smiles"], source, "--out", tmp_path / "report", "--no-progress"]
    proc = run_biolm(*args, timeout=TIMEOUT, env=env(tmp_path, **SHOW_WARNINGS))
    assert_success(proc)
    warning = next((w for w in proc.stderr.splitlines() if "line 7:" in w), "")
    assert f"{atoms:,} atoms" in warning and MAX_ATOMS_VARIABLE in warning, proc.stderr[-3000:]


def train_chem(source: Path, tmp_path: Path, *extra: str, environ: dict | None = None):
    return run_biolm(
        "train",
        "chem",
        f"data.path={source}",
        f"run_root={tmp_path / 'runs'}",
        *TINY_TRAIN,
        *extra,
        "--no-progress",
        timeout=120,
        env=environ or env(tmp_path, **SHOW_WARNINGS),
    )


@pytest.mark.slow  # a training run (about 10 s)
@pytest.mark.parametrize("atoms", SIZES)
@pytest.mark.parametrize("suffix", [".smi", ".csv"])
def test_train_chem_skips_a_molecule_too_large_for_rdkit(tmp_path, suffix, atoms):
    source = molecule_file(tmp_path / f"m{suffix}", [*SMALL, chain(atoms)])
    proc = train_chem(source, tmp_path, "name=c")
    assert_success(proc)
    warned_too_large(proc, len(SMALL) + (2 if suffix == ".csv" else 1))
    assert (tmp_path / "runs" / "c" / "model" / "model.safetensors").is_file()


def test_train_chem_of_only_too_large_molecules_is_refused(tmp_path):
    source = molecule_file(tmp_path / "m.smi", [chain(20_000)])
    proc = train_chem(source, tmp_path, environ=env(tmp_path))
    assert_clean_error(proc, "m.smi", "no valid molecule", "1 too large for RDKit", MAX_ATOMS_VARIABLE)
    assert not (tmp_path / "runs").exists()


# --- generated samples ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def carbon_model(tmp_path_factory) -> Path:
    """A SMILES model that writes `C` after `<bos>` and after `C`, so a sample is a carbon chain as long
    as --max-new-tokens: the blocks add nothing, and the tied embedding of `C` (and `<bos>`, shorter)
    points one way, so `C` scores highest by far."""
    model = tiny_model(tokenizer_of("smiles"))
    tokenizer = model.tokenizer
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("blocks"):
                parameter.zero_()
        embedding = model.embedding.weight
        embedding.zero_()
        embedding[tokenizer.encode("C")[0], 0] = 50.0
        embedding[tokenizer.bos_id, 0] = 25.0
    return save(model, tokenizer, tmp_path_factory.mktemp("carbon") / "model")


def test_a_generated_molecule_over_the_bound_counts_as_invalid(carbon_model, tmp_path):
    # A lowered bound stands in for a sample of 20,000 atoms (20,000 decoding steps here take minutes);
    # `tests/io/test_smiles_size.py` gives clean_molecules a 20,000-atom sample itself.
    out = tmp_path / "samples.smi"
    args = ["generate", carbon_model, "-n", 2, "--max-new-tokens", 60, "-o", out, "--no-progress"]
    proc = run_biolm(*args, timeout=TIMEOUT, env=env(tmp_path, **{MAX_ATOMS_VARIABLE: "50"}))
    assert_success(proc)
    assert "2 generated, 0 valid" in proc.stdout, proc.stdout
    within = run_biolm(*args, timeout=TIMEOUT, env=env(tmp_path, **{MAX_ATOMS_VARIABLE: "60"}))
    assert_success(within)
    assert "2 generated, 2 valid" in within.stdout, within.stdout
    assert out.read_text().split() == ["C" * 60]


# --- SIGTERM ----------------------------------------------------------------------------------------------


def _rdkit_loaded(pid: int) -> bool:
    try:
        return "rdkit" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _start_embed(model: Path, source: Path, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    err = tmp_path / "embed.err"
    argv = command("embed", model, source, "-o", tmp_path / "out" / "emb.npy", "--no-progress")
    with open(err, "w") as handle:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=handle,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONWARNINGS": "ignore", **env(tmp_path)},
        )
    return proc, err


def _finish(proc: subprocess.Popen, err: Path, timeout: float) -> subprocess.CompletedProcess:
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"still running {timeout} s after SIGTERM (RDKit holds the process)")
    return subprocess.CompletedProcess(proc.args, code, "", err.read_text(errors="replace"))


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see RDKit loaded")
def test_sigterm_while_rdkit_reads_molecules_at_the_bound(model_dirs, tmp_path):
    """Each molecule keeps RDKit's parser busy for a fraction of a second, a hundred of them for
    half a minute: SIGTERM, sent while RDKit works, ends the command within a few seconds."""
    assert many_open_rings(MAX_SMILES_ATOMS - 1).count("C") == MAX_SMILES_ATOMS - 1
    source = molecule_file(tmp_path / "at_bound.smi", [many_open_rings(MAX_SMILES_ATOMS - 1)] * 100)
    proc, err = _start_embed(model_dirs["smiles"], source, tmp_path)
    deadline = time.monotonic() + TIMEOUT
    while not _rdkit_loaded(proc.pid):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"RDKit never loaded (exit {proc.poll()}): {err.read_text()[-2000:]}")
        time.sleep(0.05)
    time.sleep(1.0)  # into the molecules
    assert proc.poll() is None, "finished before the signal: make the input larger"
    proc.send_signal(signal.SIGTERM)
    done = _finish(proc, err, timeout=10)
    assert_clean_error(done, "stopped by SIGTERM", code=SIGTERM_EXIT)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see RDKit loaded")
def test_sigterm_with_a_100000_atom_molecule_is_honoured(model_dirs, tmp_path):
    """The 100,000-atom molecule no longer reaches RDKit (refused at once); before, SIGTERM sent while
    RDKit worked on it was ignored for minutes."""
    source = molecule_file(tmp_path / "huge.smi", [chain(100_000)])
    proc, err = _start_embed(model_dirs["smiles"], source, tmp_path)
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None and not _rdkit_loaded(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
    done = _finish(proc, err, timeout=10)
    assert done.returncode in (2, SIGTERM_EXIT), done.stderr[-3000:]
    expected = "huge.smi" if done.returncode == 2 else "stopped by SIGTERM"
    assert_clean_error(done, expected, code=done.returncode)


# --- the bound's setting -----------------------------------------------------------------------------------


def test_the_bound_is_raised_by_its_variable(model_dirs, tmp_path):
    just_over = chain(MAX_SMILES_ATOMS + 1)
    source = molecule_file(tmp_path / "m.smi", ["CCO", just_over])
    out = tmp_path / "out"
    args = ["embed", model_dirs["smiles"], source, "-o", out / "emb.npy", "--no-progress"]
    refused = run_biolm(*args, timeout=TIMEOUT, env=env(tmp_path))
    assert_clean_error(refused, "m.smi", "record 'm2'", f"{MAX_SMILES_ATOMS + 1:,} atoms", MAX_ATOMS_VARIABLE)
    raised = {MAX_ATOMS_VARIABLE: str(MAX_SMILES_ATOMS + 1)}
    accepted = run_biolm(*args, timeout=TIMEOUT, env=env(tmp_path, **raised))
    assert_success(accepted)
    assert (out / "emb.ids.txt").read_text().split() == ["m1", "m2"]


@pytest.mark.parametrize("value", ["many", "0"])  # more values: tests/io/test_smiles_size.py
def test_a_bad_bound_setting_is_one_line(model_dirs, tmp_path, value):
    source = molecule_file(tmp_path / "m.smi", ["CCO"])
    args = ["embed", model_dirs["smiles"], source, "-o", tmp_path / "out" / "emb.npy", "--no-progress"]
    proc = run_biolm(*args, timeout=TIMEOUT, env=env(tmp_path, **{MAX_ATOMS_VARIABLE: value}))
    assert_clean_error(proc, MAX_ATOMS_VARIABLE, repr(value))
    assert not (tmp_path / "out").exists()
