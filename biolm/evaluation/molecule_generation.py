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

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biolm.evaluation import molecule_metrics as mm
from biolm.evaluation.generation_common import load_generation_model, prompted_samples
from biolm.evaluation.generation_report import gain_plot, gain_table, histogram_plot
from biolm.evaluation.incontext import DEFAULT_SIZES, gain_curve, split_members
from biolm.evaluation.report import write_report
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


def unconditional_samples(
    model, num_samples: int, max_new_tokens: int, sampling: dict, seed: int, progress: bool
):
    """SMILES sampled from `<bos>` (a sample ends at `<eos>` or `<sep>`)."""
    from biolm.inference.pipeline import sample_texts

    return sample_texts(
        model, num_samples, max_new_tokens=max_new_tokens, seed=seed, progress=progress, **sampling
    )


def conditioned_samples(
    model,
    molecule_set: MoleculeSetData,
    pool: np.ndarray,
    *,
    num_samples: int,
    sample_context: int,
    samples_per_prompt: int,
    token_budget: int,
    max_new_tokens: int,
    sampling: dict,
    seed: int,
) -> tuple[list[str], list[int]]:
    """Samples after prompts of pool molecules; returns them and each prompt's number of members."""

    def choose(rng: np.random.Generator) -> list[int]:
        """Pool molecules in a random order, while they fit `token_budget` and `sample_context`."""
        chosen, used = [], 1
        for i in rng.permutation(pool):
            cost = len(molecule_set.ids[i]) + 1
            if used + cost > token_budget or len(chosen) >= sample_context:
                break
            chosen.append(i)
            used += cost
        return chosen

    rng = np.random.default_rng([seed, 2, *molecule_set.name.encode()])
    samples, members = [], []
    for _, chosen, _, texts in prompted_samples(
        model,
        molecule_set.name,
        molecule_set.ids,
        choose,
        rng,
        num_samples=num_samples,
        samples_per_prompt=samples_per_prompt,
        max_new_tokens=max_new_tokens,
        sampling=sampling,
        seed=seed,
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


def _f(value: float, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.1f} %"


def _e(value: float) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.1e}"


def moses_section(metrics: dict) -> str:
    lines = ["## Unconditional samples (MOSES metrics)", "", "| metric | value |", "|---|---:|"]
    lines += [f"| {name} | {_f(value)} |" for name, value in metrics.items()]
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
            f"| {name} | {s['molecules']} | {s['held_out']} | {_f(s['prompt_members_mean'], 1)} "
            f"| {s['samples']} "
            f"| {_p(s['valid'])} | {_p(s['unique'])} | {_p(s['novel_vs_set'])} "
            f"| {_f(s['nn_similarity_conditioned'])} | {_f(s['nn_similarity_unconditional'])} "
            f"| {_f(s['nn_similarity_pool'])} | {_e(s['mann_whitney_p'])} "
            f"| {_f(s['fcd_conditioned'], 2)} | {_f(s['fcd_unconditional'], 2)} |"
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
    *,
    num_unconditional: int = 1000,
    train: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    max_reference: int | None = 10000,
    column: str | None = None,
    sizes: Sequence[int] = DEFAULT_SIZES,
    held_out: int = 100,
    draws: int = 2,
    num_samples: int = 200,
    sample_context: int = 64,
    samples_per_prompt: int = 10,
    token_budget: int = 2048,
    max_new_tokens: int = 128,
    sampling: dict | None = None,
    seed: int = 0,
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
        num_unconditional: samples from `<bos>`.
        train: training molecules (a file or a directory of files), for the novelty of the
            unconditional samples (read whole).
        test: reference molecules (file or directory) for FCD/SNN/Frag/Scaf (a seeded sample of
            `max_reference`).
        column: the SMILES column of CSV/TSV files (auto-detected if None).
        held_out: molecules held out per set (at most half of it).
        num_samples: conditioned samples per set; sample_context: most molecules in a prompt;
        samples_per_prompt: samples per prompt; token_budget: most prompt tokens.
        max_new_tokens: most tokens per sample.
        sampling: temperature / top_k / top_p / min_p for `generate`.
        model: the model of `model_dir`, when already loaded.
    """
    from biolm.data.chem import read_molecule_sets

    started = time.perf_counter()
    model = load_generation_model(model_dir, model, device, "smiles")
    sampling = sampling or {}
    sets = [set_data(m, model.tokenizer) for path in data for m in read_molecule_sets(path, column)]
    train_smiles = _reference(train, column, None, seed)
    test_smiles = _reference(test, column, max_reference, seed)

    unconditional = unconditional_samples(model, num_unconditional, max_new_tokens, sampling, seed, progress)
    moses = mm.moses_metrics(
        unconditional,
        train=set(train_smiles) if train_smiles is not None else None,
        test=test_smiles,
        device=device,
    )
    unconditional_valid = [c for c in mm.canonical_valid(unconditional) if c is not None]
    summaries: dict[str, dict] = {}
    curve = None
    conditioned_all: dict[str, list[str]] = {}
    if sets:
        curve = gain_curve(
            model,
            {s.name: s.ids for s in sets},
            sizes,
            held_out=held_out,
            draws=draws,
            seed=seed,
            progress=progress,
        )
        from tqdm.auto import tqdm

        for molecule_set in tqdm(sets, desc="sets", unit="set", disable=not progress):
            held, pool = split_members(molecule_set.name, len(molecule_set.ids), held_out, seed)
            if not len(held) or not len(pool):
                continue
            samples, members = conditioned_samples(
                model,
                molecule_set,
                pool,
                num_samples=num_samples,
                sample_context=sample_context,
                samples_per_prompt=samples_per_prompt,
                token_budget=token_budget,
                max_new_tokens=max_new_tokens,
                sampling=sampling,
                seed=seed,
            )
            conditioned_all[molecule_set.name] = samples
            summaries[molecule_set.name] = set_summary(
                molecule_set, held, pool, samples, unconditional_valid, None, members, device
            )
    facts = {
        "model": str(model_dir),
        "unconditional samples": f"{num_unconditional:,} from <bos>, at most {max_new_tokens} tokens",
        "sampling": ", ".join(f"{k} {v}" for k, v in sampling.items() if v is not None) or "temperature 1",
        "novelty reference": f"{train} ({len(train_smiles):,} molecules)"
        if train_smiles is not None
        else "none",
        "test reference": f"{test} ({len(test_smiles):,} molecules)" if test_smiles is not None else "none",
    }
    if sets:
        facts["sets"] = f"{len(sets)} ({', '.join(s.name for s in sets)})"
        facts["set-conditioned samples"] = (
            f"{num_samples} per set, {samples_per_prompt} per prompt of at most {sample_context} pool "
            f"molecules within {token_budget:,} tokens; up to {held_out} molecules per set held out "
            "(at most half)"
        )
    facts["wall time"] = f"{time.perf_counter() - started:.0f} s"
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
    clean = {name: {k: v for k, v in s.items() if not k.startswith("_")} for name, s in summaries.items()}
    extra = {"moses": moses, "sets": clean}
    if curve is not None:
        extra["gain_curve"] = curve.to_json()
    files = {"unconditional.smi": "\n".join(unconditional) + "\n"}
    files.update({f"conditioned_{name}.smi": "\n".join(s) + "\n" for name, s in conditioned_all.items()})
    write_report(
        out_dir, "biolm eval generation (molecules)", facts, {}, plots, extra, sections=sections, files=files
    )
    return {"moses": moses, "sets": clean, "gain_curve": curve}


def _conditioning_verdict(summaries: dict[str, dict]) -> str:
    closer = [n for n, s in summaries.items() if s["mann_whitney_p"] < 0.01]
    return (
        f"Conditioned samples are closer to the held-out members than unconditional ones (p < 0.01) for "
        f"{len(closer)} of {len(summaries)} sets" + (f": {', '.join(closer)}." if closer else ".")
    )
