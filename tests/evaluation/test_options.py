"""`biolm.evaluation.options`: every recipe's defaults, and each bad value refused when the options
are made, named as the Python caller and (through `ArgumentError.spelled`) as the CLI user spells it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from biolm.errors import ArgumentError
from biolm.evaluation.options import (
    BaselineOptions,
    FinetuneOptions,
    MoleculeGenerationOptions,
    ProteinGenerationOptions,
)


def test_generation_defaults_by_domain():
    protein, molecule = ProteinGenerationOptions(), MoleculeGenerationOptions()
    assert (protein.held_out, protein.num_samples, protein.sample_context) == (16, 20, 32)
    assert (molecule.held_out, molecule.num_samples, molecule.sample_context) == (100, 200, 64)
    assert protein.max_new_tokens is None and molecule.max_new_tokens == 128
    # What `biolm eval generation` gave before the options were one class: 5 samples per prompt.
    assert protein.samples_per_prompt == molecule.samples_per_prompt == 5
    assert protein.sampling == {"temperature": 1.0, "top_k": None, "top_p": None, "min_p": None}
    assert (molecule.num_unconditional, molecule.max_reference, molecule.token_budget) == (1000, 10000, 2048)


@pytest.mark.parametrize("options", [ProteinGenerationOptions, MoleculeGenerationOptions])
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"draws": 0}, "draws must be at least 1"),
        ({"samples_per_prompt": 0}, "samples_per_prompt must be at least 1"),
        ({"held_out": 0}, "held_out must be at least 1"),
        ({"sample_context": -1}, "sample_context must be at least 1"),
        ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
        ({"num_samples": -1}, "num_samples must be at least 0"),
        ({"temperature": -1.0}, "temperature must be 0 (greedy) or a positive finite number, got -1.0"),
        ({"top_k": 0}, "top_k must be at least 1, got 0"),
        ({"top_p": 0.0}, "top_p must be in (0, 1], got 0.0"),
        ({"min_p": 2.0}, "min_p must be in [0, 1], got 2.0"),
        ({"seed": -1}, "seed must be at least 0, got -1"),
    ],
)
def test_generation_options_refuse_bad_values(options, values, message):
    with pytest.raises(ArgumentError) as info:
        options(**values)
    assert str(info.value) == message
    flag = "--" + next(iter(values)).replace("_", "-")
    assert info.value.spelled(lambda name: "--" + name.replace("_", "-")).startswith(flag)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"num_unconditional": -1}, "num_unconditional must be at least 0"),
        ({"max_reference": 0}, "max_reference must be at least 1"),
    ],
)
def test_molecule_options_refuse_bad_values(values, message):
    with pytest.raises(ArgumentError, match=message):
        MoleculeGenerationOptions(**values)


def test_zero_samples_and_no_reference_limit_are_allowed():
    assert MoleculeGenerationOptions(num_samples=0, num_unconditional=0, max_reference=None).num_samples == 0
    assert ProteinGenerationOptions(num_samples=0, max_new_tokens=None).max_new_tokens is None


def test_generation_options_are_keyword_only():
    with pytest.raises(TypeError):
        ProteinGenerationOptions((0, 1))  # type: ignore[misc]


@pytest.mark.parametrize("name", ["batch_size", "max_epochs", "patience"])
def test_finetune_options_refuse_counts_below_one(name):
    with pytest.raises(ArgumentError, match=f"^{name} must be at least 1$"):
        FinetuneOptions(**{name: 0})


def test_finetune_options_keep_the_report_order():
    # The report's "fine-tuning" line lists the fields in this order.
    assert [f.name for f in dataclasses.fields(FinetuneOptions)][:3] == ["head", "lr", "lr_schedule"]
    assert [f.name for f in dataclasses.fields(FinetuneOptions)][-2:] == ["head_init", "rc_augment"]


def test_baseline_options_refuse_an_ensemble_weight_outside_0_1():
    with pytest.raises(ArgumentError, match=r"ensemble_weight must be in \[0, 1\], got 1.5"):
        BaselineOptions(ensemble_weight=1.5)
    assert BaselineOptions(ensemble_weight=0).ensemble_weight == 0


def test_importing_the_options_costs_no_numpy_or_torch():
    # The CLI reads these defaults for --help while it builds its parser, on every command.
    code = "import sys, biolm.evaluation.options; print('numpy' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr
