"""`biolm eval generation` for a SMILES model: unconditional samples with the MOSES metrics, and
samples conditioned on molecule sets, compared with the set's held-out members.

Unconditional: `num_unconditional` samples from `<bos>`; validity, uniqueness, novelty against a
training file, internal diversity, and with a test file FCD, SNN, fragment and scaffold similarity and
property distances to it (`molecule_metrics.moses_metrics`).

Set-conditioned, for each set file: the distinct molecules are split into held-out members and a context
pool (`incontext.split_members`). The gain curve scores the held-out members (canonical SMILES) after k
pool members. Samples are generated after prompts of pool members (a fresh random choice per prompt, as
many as fit `token_budget`, at most `sample_context`) and compared with the held-out members: the mean
Tanimoto similarity of each valid sample to its nearest held-out member, against the same figure for the
unconditional samples (one-sided Mann-Whitney U test), and the FCD of both to the held-out members.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biolm.data.layout import DEFAULT_LAYOUT
from biolm.evaluation import molecule_metrics as mm
from biolm.evaluation.generation_common import (
    GenerationReport,
    load_generation_model,
    over_sets,
    prompt_rng,
    prompted_samples,
    sampler_text,
    set_gain_curve,
    split_set,
    write_generation_report,
)
from biolm.evaluation.generation_report import (
    gain_plot,
    gain_table,
    histogram_plot,
    number,
    percent,
    scientific,
)
from biolm.evaluation.incontext import GainCurve
from biolm.evaluation.options import MoleculeGenerationOptions
from biolm.models import BioLM


@dataclass
class MoleculeSetData:
    """The distinct molecules of one set file that the model can read: canonical SMILES and ids."""

    name: str
    path: Path
    smiles: list[str]
    ids: list[np.ndarray]
    left_out: int  # molecules with tokens outside the vocabulary


def set_data(molecules, tokenizer) -> MoleculeSetData:
    """The distinct molecules of a `biolm.data.chem.MoleculeSet` (canonical SMILES, as training reads
    them), tokenized; molecules with tokens outside the vocabulary are left out and counted."""
    from biolm.tokenizers import TokenizationError

    smiles, ids, left_out = [], [], 0
    for s in dict.fromkeys(molecules.smiles):
        try:
            encoded = tokenizer.encode(s, record=s)
        except TokenizationError:
            left_out += 1
            continue
        if tokenizer.unk_id in encoded:
            left_out += 1
            continue
        smiles.append(s)
        ids.append(encoded.astype(np.int64))
    return MoleculeSetData(molecules.name, Path(molecules.path), smiles, ids, left_out)


def unconditional_samples(model, options: MoleculeGenerationOptions, progress: bool) -> list[str]:
    """SMILES sampled from `<bos>` (a sample ends at `<eos>` or `<sep>`)."""
    from biolm.inference.generate import sample_texts

    return sample_texts(
        model,
        options.num_unconditional,
        max_new_tokens=options.max_new_tokens,
        seed=options.seed,
        progress=progress,
        **options.sampling,
    )


def choose_members(
    rng: np.random.Generator,
    molecule_set: MoleculeSetData,
    pool: np.ndarray,
    sample_context: int,
    token_budget: int,
) -> list[int]:
    """Pool molecules in a random order, while they fit `token_budget` and `sample_context` (the
    first that does not fit ends the prompt, as training packs a set)."""
    order = rng.permutation(pool)
    lengths = [len(molecule_set.ids[i]) for i in order]
    return [order[j] for j in DEFAULT_LAYOUT.choose(lengths, token_budget, sample_context)]


def conditioned_samples(
    model, molecule_set: MoleculeSetData, pool: np.ndarray, options: MoleculeGenerationOptions
) -> tuple[list[str], list[int]]:
    """Samples after prompts of pool molecules; returns them and each prompt's number of members."""

    def choose(rng: np.random.Generator) -> list[int]:
        return choose_members(rng, molecule_set, pool, options.sample_context, options.token_budget)

    samples, members = [], []
    rng = prompt_rng(molecule_set.name, options)
    for _, chosen, _, texts in prompted_samples(
        model, molecule_set.name, molecule_set.ids, choose, rng, options, options.max_new_tokens
    ):
        samples += texts
        members.append(len(chosen))
    return samples, members


def _mann_whitney_greater(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import mannwhitneyu

    if len(a) < 2 or len(b) < 2:
        return float("nan")
    return float(mannwhitneyu(a, b, alternative="greater").pvalue)


def set_summary(
    molecule_set: MoleculeSetData,
    held: np.ndarray,
    pool: np.ndarray,
    conditioned: list[str],
    unconditional_valid: list[str],
    unconditional_nn: np.ndarray | None,
    prompt_members: list[int],
    device: str,
) -> dict:
    """Validity, uniqueness, novelty of the conditioned samples; their similarity to the held-out
    members against the unconditional samples' and the pool's (natural molecules of the set)."""
    canonical = mm.canonical_valid(conditioned)
    valid = [c for c in canonical if c is not None]
    held_smiles = [molecule_set.smiles[i] for i in held]
    held_fps = mm.fingerprints(held_smiles)
    cond_nn = mm.nearest_similarity(mm.fingerprints(valid), held_fps) if valid else np.array([])
    if unconditional_nn is None:
        unconditional_nn = mm.nearest_similarity(mm.fingerprints(unconditional_valid), held_fps)
    pool_nn = mm.nearest_similarity(mm.fingerprints([molecule_set.smiles[i] for i in pool]), held_fps)
    return {
        "molecules": len(molecule_set.smiles),
        "held_out": len(held),
        "prompt_members_mean": float(np.mean(prompt_members)) if prompt_members else float("nan"),
        "samples": len(conditioned),
        "valid": mm.validity(canonical),
        "unique": mm.uniqueness(valid),
        "novel_vs_set": mm.novelty(valid, set(molecule_set.smiles)),
        "nn_similarity_conditioned": float(cond_nn.mean()) if len(cond_nn) else float("nan"),
        "nn_similarity_unconditional": float(unconditional_nn.mean())
        if len(unconditional_nn)
        else float("nan"),
        "nn_similarity_pool": float(pool_nn.mean()) if len(pool_nn) else float("nan"),
        "mann_whitney_p": _mann_whitney_greater(cond_nn, unconditional_nn),
        "fcd_conditioned": mm.fcd(valid, held_smiles, device) if valid else float("nan"),
        "fcd_unconditional": mm.fcd(unconditional_valid, held_smiles, device),
        "_nn": (cond_nn.tolist(), unconditional_nn.tolist()),
    }


def moses_section(metrics: dict) -> str:
    lines = ["## Unconditional samples (MOSES metrics)", "", "| metric | value |", "|---|---:|"]
    lines += [f"| {name} | {number(value, 3)} |" for name, value in metrics.items()]
    return "\n".join(lines)


def sets_section(summaries: dict[str, dict]) -> str:
    lines = [
        "## Set-conditioned samples",
        "",
        "NN similarity: mean Tanimoto similarity (Morgan r2, 1,024 bits) of each valid sample to its nearest "
        "held-out member of the set; p: one-sided Mann-Whitney U test that conditioned samples are closer "
        "than unconditional ones; pool: the set's own context molecules, for reference.",
        "",
        "| set | molecules | held out | prompt members | samples | valid | unique | novel vs set "
        "| NN sim. conditioned | NN sim. unconditional | NN sim. pool | p | FCD cond. | FCD uncond. |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summaries.items():
        lines.append(
            f"| {name} | {s['molecules']} | {s['held_out']} | {number(s['prompt_members_mean'], 1)} "
            f"| {s['samples']} "
            f"| {percent(s['valid'], 1)} | {percent(s['unique'], 1)} | {percent(s['novel_vs_set'], 1)} "
            f"| {number(s['nn_similarity_conditioned'], 3)} | {number(s['nn_similarity_unconditional'], 3)} "
            f"| {number(s['nn_similarity_pool'], 3)} | {scientific(s['mann_whitney_p'])} "
            f"| {number(s['fcd_conditioned'])} | {number(s['fcd_unconditional'])} |"
        )
    return "\n".join(lines)


def _reference(
    path: str | os.PathLike | None, column: str | None, limit: int | None, seed: int
) -> list[str] | None:
    """Canonical valid SMILES of a reference file or directory of files, distinct, in file order; a
    seeded sample of `limit` when longer."""
    if path is None:
        return None
    from biolm.data.chem import read_molecule_sets

    smiles = list(dict.fromkeys(s for m in read_molecule_sets(path, column) for s in m.smiles))
    if limit is not None and len(smiles) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(smiles), limit, replace=False))
        smiles = [smiles[i] for i in keep]
    return smiles


def run_molecule_generation(
    model_dir: str | os.PathLike,
    data: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: MoleculeGenerationOptions | None = None,
    *,
    device: str = "cpu",
    progress: bool = True,
    model: BioLM | None = None,
) -> dict:
    """Evaluate molecule generation; writes a report and returns its numbers.

    Args:
        model_dir: a causal SMILES model directory.
        data: molecule set files (.smi/.csv/.tsv) or directories of them, for set-conditioned
            generation; may be empty (unconditional only).
        out_dir: report directory (report.md, PNGs, metrics.json, samples), replaced as a whole.
        options: the recipe's settings (None: every default of `MoleculeGenerationOptions`).
        device: where the model runs, and FCD's ChemNet.
        model: the model of `model_dir`, when already loaded.

    Returns:
        {"moses": the unconditional samples' metrics, "sets": per-set numbers, "gain_curve": GainCurve
        or None without sets}.
    """
    from biolm.data.chem import read_molecule_sets

    options = options or MoleculeGenerationOptions()
    started = time.perf_counter()
    model = load_generation_model(model_dir, model, device, "chem")
    sets = [set_data(m, model.tokenizer) for path in data for m in read_molecule_sets(path, options.column)]
    train_smiles = _reference(options.train, options.column, None, options.seed)
    test_smiles = _reference(options.test, options.column, options.max_reference, options.seed)

    unconditional = unconditional_samples(model, options, progress)
    moses = mm.moses_metrics(
        unconditional,
        train=set(train_smiles) if train_smiles is not None else None,
        test=test_smiles,
        device=device,
    )
    unconditional_valid = [c for c in mm.canonical_valid(unconditional) if c is not None]
    curve, summaries, conditioned = None, {}, {}
    if sets:
        curve = set_gain_curve(model, {s.name: s.ids for s in sets}, options, progress)
        summaries, conditioned = _conditioned_sets(
            model, sets, unconditional_valid, options, device, progress
        )
    facts = {
        "unconditional samples": f"{options.num_unconditional:,} from <bos>, at most "
        f"{options.max_new_tokens} tokens",
        "sampling": sampler_text(options),
        "novelty reference": _reference_fact(options.train, train_smiles),
        "test reference": _reference_fact(options.test, test_smiles),
    }
    if sets:
        facts["sets"] = f"{len(sets)} ({', '.join(s.name for s in sets)})"
        facts["set-conditioned samples"] = (
            f"{options.num_samples} per set, {options.samples_per_prompt} per prompt of at most "
            f"{options.sample_context} pool molecules within {options.token_budget:,} tokens; up to "
            f"{options.held_out} molecules per set held out (at most half)"
        )
    report = _report(facts, moses, curve, summaries, unconditional, conditioned)
    return write_generation_report(out_dir, "biolm eval generation (molecules)", model_dir, started, report)


def _conditioned_sets(
    model,
    sets: list[MoleculeSetData],
    unconditional_valid: list[str],
    options: MoleculeGenerationOptions,
    device: str,
    progress: bool,
) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """Each set's samples after prompts of its pool and their summary (`set_summary`); a set too small
    to hold a member out is left out."""
    summaries, conditioned = {}, {}
    for molecule_set in over_sets(sets, "sets", "set", progress):
        held, pool = split_set(molecule_set.name, len(molecule_set.ids), options)
        if not len(held) or not len(pool):
            continue
        samples, members = conditioned_samples(model, molecule_set, pool, options)
        conditioned[molecule_set.name] = samples
        summaries[molecule_set.name] = set_summary(
            molecule_set, held, pool, samples, unconditional_valid, None, members, device
        )
    return summaries, conditioned


def _reference_fact(path: str | os.PathLike | None, smiles: list[str] | None) -> str:
    return f"{path} ({len(smiles):,} molecules)" if smiles is not None else "none"


def _report(
    facts: dict[str, str],
    moses: dict,
    curve: GainCurve | None,
    summaries: dict[str, dict],
    unconditional: list[str],
    conditioned: dict[str, list[str]],
) -> GenerationReport:
    sections = [moses_section(moses)]
    plots = {}
    if curve is not None:
        sections += [
            gain_table(curve, "SMILES token"),
            sets_section(summaries),
            _conditioning_verdict(summaries),
        ]
        plots["gain_curve"] = gain_plot(curve, "perplexity per SMILES token")
        plots["nn_similarity"] = histogram_plot(
            {
                "conditioned": [v for s in summaries.values() for v in s["_nn"][0]],
                "unconditional": [v for s in summaries.values() for v in s["_nn"][1]],
            },
            "Tanimoto similarity to the nearest held-out member",
        )
    # "_nn" holds the per-sample similarities behind the histogram, not a metric.
    clean = {name: {k: v for k, v in s.items() if not k.startswith("_")} for name, s in summaries.items()}
    numbers = {"moses": moses, "sets": clean}
    if curve is not None:
        numbers["gain_curve"] = curve.to_json()
    files = {"unconditional.smi": "\n".join(unconditional) + "\n"}
    files.update({f"conditioned_{name}.smi": "\n".join(s) + "\n" for name, s in conditioned.items()})
    return GenerationReport(
        facts, sections, plots, numbers, {"moses": moses, "sets": clean, "gain_curve": curve}, files
    )


def _conditioning_verdict(summaries: dict[str, dict]) -> str:
    closer = [n for n, s in summaries.items() if s["mann_whitney_p"] < 0.01]
    return (
        f"Conditioned samples are closer to the held-out members than unconditional ones (p < 0.01) for "
        f"{len(closer)} of {len(summaries)} sets" + (f": {', '.join(closer)}." if closer else ".")
    )
