"""`biolm eval generation` for a protein model: in-context gain curve, samples conditioned on family
members, and how family-like and how novel the samples are.

For each family file (read by `protein_families`): the distinct members are split into held-out members
and a context pool (`incontext.split_members`). The gain curve scores the held-out members after 0, 1,
2, ... pool members. Samples are generated after prompts of `sample_context` pool members (a fresh
random choice per prompt, `samples_per_prompt` samples each) and measured: a hit of the family's profile
HMM (pyhmmer, Pfam gathering threshold), the identity to the nearest member of their prompt, and their
length. The held-out natural members are measured the same way, as the reference a sample is compared
with. The settings are a `ProteinGenerationOptions`; the steps both recipes share are in
`generation_common`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biolm.errors import InputError
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
    percent,
    scatter_with_lines,
)
from biolm.evaluation.incontext import GainCurve
from biolm.evaluation.options import ProteinGenerationOptions
from biolm.evaluation.protein_families import FamilyData, family_files, read_family
from biolm.evaluation.protein_metrics import hmm_for_family, hmm_hits, length_summary, nearest_identity
from biolm.models import BioLM

log = logging.getLogger(__name__)

NOVELTY_IDENTITY = 0.9  # a sample under this identity to every context member counts as new


@dataclass
class SampleRecord:
    """One generated protein and its measures."""

    family: str
    prompt: int
    sequence: str
    ended: bool
    identity: float = float("nan")
    nearest: str = ""
    hmm_score: float = float("nan")
    hmm_hit: bool | None = None


@dataclass
class FamilyResult:
    """Samples and reference measures of one family."""

    family: FamilyData
    samples: list[SampleRecord] = field(default_factory=list)
    natural_hit: np.ndarray | None = None  # held-out members' HMM hits
    natural_identity: np.ndarray | None = None  # held-out members' identity to a prompt of pool members
    natural_lengths: list[int] = field(default_factory=list)
    threshold: str = ""


def read_families(
    data: Sequence[str | os.PathLike], tokenizer, hmm_dir: str | os.PathLike | None
) -> list[FamilyData]:
    """The families of the family files with at least 2 distinct members, each with its HMM when
    `hmm_dir` has one; the others are left out with a warning."""
    families = []
    for path in family_files(data):
        family = read_family(path, tokenizer)
        if len(family.ids) < 2:
            log.warning("%s: fewer than 2 distinct members; left out", path)
            continue
        family.hmm = hmm_for_family(path, Path(hmm_dir)) if hmm_dir is not None else None
        if hmm_dir is not None and family.hmm is None:
            log.warning("%s: no HMM for this family in %s; HMM hits not measured", path, hmm_dir)
        families.append(family)
    if not families:
        raise InputError("no family with at least 2 distinct members")
    return families


def _random_prompt(rng: np.random.Generator, pool: np.ndarray, size: int) -> np.ndarray:
    """`size` pool members (all of a smaller pool), drawn without replacement."""
    return rng.choice(pool, size=min(size, len(pool)), replace=False)


def sample_family(model, family: FamilyData, options: ProteinGenerationOptions) -> FamilyResult:
    """Generate `options.num_samples` members of a family after prompts of its pool members, and
    measure them and the held-out natural members alike."""
    result = FamilyResult(family)
    held, pool = split_set(family.name, len(family.ids), options)
    limit = options.max_new_tokens or max(32, 2 * max(len(s) for s in family.sequences))
    rng = prompt_rng(family.name, options)
    prompts = prompted_samples(
        model,
        family.name,
        family.ids,
        lambda rng: _random_prompt(rng, pool, options.sample_context),
        rng,
        options,
        limit,
    )
    for p, chosen, rows, texts in prompts:
        context = [family.sequences[i] for i in chosen]
        identity, nearest = nearest_identity(texts, context)
        for text, row, value, j in zip(texts, rows, identity, nearest, strict=True):
            result.samples.append(
                SampleRecord(
                    family.name, p, text, len(row) < limit, float(value), context[j] if j >= 0 else ""
                )
            )
    # Natural reference: the held-out members, each against a prompt-sized draw of the pool.
    natural = [family.sequences[i] for i in held]
    result.natural_lengths = [len(s) for s in natural]
    reference = [family.sequences[i] for i in _random_prompt(rng, pool, options.sample_context)]
    result.natural_identity = nearest_identity(natural, reference)[0]
    if family.hmm is not None:
        found = hmm_hits(family.hmm, [s.sequence for s in result.samples] + natural)
        n = len(result.samples)
        for record, hit, score in zip(result.samples, found.hit[:n], found.score[:n], strict=True):
            record.hmm_hit, record.hmm_score = bool(hit), float(score)
        result.natural_hit = found.hit[n:]
        result.threshold = found.threshold
    return result


def _fraction(values: Sequence[bool]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def family_summary(result: FamilyResult) -> dict:
    """The numbers of one family's row in the sampling table (and metrics.json)."""
    samples = result.samples
    has_hmm = result.family.hmm is not None
    identity = np.array([s.identity for s in samples])
    novel = identity < NOVELTY_IDENTITY
    hits = np.array([bool(s.hmm_hit) for s in samples]) if has_hmm else None
    return {
        "samples": len(samples),
        "ended": _fraction([s.ended for s in samples]),
        "hmm_hit": _fraction(hits) if has_hmm else None,
        "hmm_hit_novel": _fraction(hits & novel) if has_hmm else None,
        "identity_median": float(np.median(identity)) if len(identity) else float("nan"),
        "identity_novel": _fraction(novel),
        "natural_hmm_hit": _fraction(result.natural_hit) if result.natural_hit is not None else None,
        "natural_identity_median": float(np.median(result.natural_identity))
        if result.natural_identity is not None and len(result.natural_identity)
        else float("nan"),
        "length": length_summary([len(s.sequence) for s in samples]),
        "natural_length": length_summary(result.natural_lengths),
        "threshold": result.threshold,
    }


def sampling_table(summaries: dict[str, dict], totals: dict) -> str:
    """Markdown table of the samples, one row per family, then all families."""
    lines = [
        "## Samples",
        "",
        "| family | samples | ended | HMM hits | hits < 90 % identity "
        "| median identity to nearest context member | natural: HMM hits | natural: median identity "
        "| length mean ± sd | natural length mean ± sd |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in [*summaries.items(), ("**all**", totals)]:
        length, natural = s["length"], s["natural_length"]
        lines.append(
            f"| {name} | {s['samples']} | {percent(s['ended'])} | {percent(s['hmm_hit'])} "
            f"| {percent(s['hmm_hit_novel'])} | {s['identity_median']:.2f} | {percent(s['natural_hmm_hit'])} "
            f"| {s['natural_identity_median']:.2f} "
            f"| {length['mean']:.0f} ± {length['sd']:.0f} | {natural['mean']:.0f} ± {natural['sd']:.0f} |"
        )
    return "\n".join(lines)


def _totals(results: list[FamilyResult]) -> dict:
    merged = FamilyResult(FamilyData("all", Path("."), [], [], None))
    with_hmm = [r for r in results if r.family.hmm is not None]
    merged.samples = [s for r in results for s in r.samples]
    merged.natural_lengths = [n for r in results for n in r.natural_lengths]
    merged.natural_identity = np.concatenate(
        [r.natural_identity for r in results if r.natural_identity is not None]
    )
    summary = family_summary(merged)
    if with_hmm:
        samples = [s for r in with_hmm for s in r.samples]
        hits = np.array([bool(s.hmm_hit) for s in samples])
        novel = np.array([s.identity < NOVELTY_IDENTITY for s in samples])
        summary["hmm_hit"], summary["hmm_hit_novel"] = _fraction(hits), _fraction(hits & novel)
        summary["natural_hmm_hit"] = _fraction(np.concatenate([r.natural_hit for r in with_hmm]))
    return summary


def samples_tsv(results: list[FamilyResult]) -> str:
    """Every sample: family, prompt, ended, identity, nearest context member, HMM score and hit."""
    rows = ["family\tprompt\tended\tidentity\thmm_score\thmm_hit\tsequence\tnearest_context_member"]
    for r in results:
        for s in r.samples:
            hit = "" if s.hmm_hit is None else str(int(s.hmm_hit))
            rows.append(
                f"{s.family}\t{s.prompt}\t{int(s.ended)}\t{s.identity:.3f}\t{s.hmm_score:.1f}\t{hit}\t"
                f"{s.sequence}\t{s.nearest}"
            )
    return "\n".join(rows) + "\n"


def hit_rule(results: Sequence[FamilyResult]) -> str:
    """How the families' HMM hits were decided. Each HMM has cutoffs of its own (in metrics.json),
    so the header counts the kinds of rule rather than quoting one family's bits."""
    kinds = Counter(r.threshold.split(" (")[0] for r in results if r.threshold)
    if not kinds:
        return "not measured (no --hmm-dir)"
    rules = ", ".join(
        f"{kind} for {count} {'family' if count == 1 else 'families'}" for kind, count in kinds.items()
    )
    return f"each family HMM's own cutoff: {rules} (the bits of each in metrics.json)"


def run_protein_generation(
    model_dir: str | os.PathLike,
    data: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: ProteinGenerationOptions | None = None,
    *,
    device: str = "cpu",
    progress: bool = True,
    model: BioLM | None = None,
) -> dict:
    """Evaluate in-context protein generation on family files; writes a report and returns its numbers.

    Args:
        model_dir: a causal protein model directory.
        data: family files (FASTA/A3M/Stockholm, gzip allowed) or directories of them.
        out_dir: report directory (report.md, PNGs, metrics.json, samples.tsv), replaced as a whole.
        options: the recipe's settings (None: every default of `ProteinGenerationOptions`).
        model: the model of `model_dir`, when already loaded.

    Returns:
        {"gain_curve": GainCurve, "families": per-family numbers, "all": all families', "targets"}.
    """
    options = options or ProteinGenerationOptions()
    started = time.perf_counter()
    model = load_generation_model(model_dir, model, device, "protein")
    families = read_families(data, model.tokenizer, options.hmm_dir)
    curve = set_gain_curve(model, {f.name: f.ids for f in families}, options, progress)
    results = [
        sample_family(model, family, options)
        for family in over_sets(families, "sampling", "family", progress)
    ]
    report = _report(families, curve, results, options)
    return write_generation_report(out_dir, "biolm eval generation (proteins)", model_dir, started, report)


def _report(
    families: list[FamilyData],
    curve: GainCurve,
    results: list[FamilyResult],
    options: ProteinGenerationOptions,
) -> GenerationReport:
    summaries = {r.family.name: family_summary(r) for r in results}
    totals = _totals(results)
    targets = _targets(curve, totals)
    facts = {
        "families": f"{len(families)} ({', '.join(f.name for f in families)})",
        "members": f"{sum(len(f.ids) for f in families):,} distinct; up to {options.held_out} per family "
        "held out (at most half), the rest the context pool",
        "gain curve": f"held-out members scored after k pool members, {options.draws} random orders per "
        "family; perplexity per residue",
        "sampling": f"{options.num_samples} per family, {options.samples_per_prompt} per prompt of "
        f"{options.sample_context} pool members; {sampler_text(options)}",
        "HMM hit": hit_rule(results),
        "novel": f"identity to every member of the sample's prompt under {NOVELTY_IDENTITY:.0%} "
        "(global alignment, BLOSUM62; identical residues / shorter length)",
    }
    sections = [gain_table(curve, "residue"), sampling_table(summaries, totals), _targets_section(targets)]
    numbers = {"families": summaries, "all": totals, "targets": targets}
    return GenerationReport(
        facts,
        sections,
        _plots(curve, results),
        {"gain_curve": curve.to_json(), **numbers},
        {"gain_curve": curve, **numbers},
        files={"samples.tsv": samples_tsv(results)},
    )


def _plots(curve: GainCurve, results: list[FamilyResult]) -> dict:
    def relative(lengths: Sequence[int], result: FamilyResult) -> list[float]:
        return [n / np.median(result.natural_lengths or [1]) for n in lengths]

    return {
        "gain_curve": gain_plot(curve, "perplexity per residue"),
        "identity_vs_hmm": scatter_with_lines(
            [s.identity for r in results for s in r.samples],
            [s.hmm_score for r in results for s in r.samples],
            "identity to nearest context member",
            "HMM bit score",
            vertical=NOVELTY_IDENTITY,
        ),
        "lengths": histogram_plot(
            {
                "samples": [v for r in results for v in relative([len(s.sequence) for s in r.samples], r)],
                "held-out natural": [v for r in results for v in relative(r.natural_lengths, r)],
            },
            "length / family's median natural length",
        ),
    }


def _targets(curve, totals: dict) -> dict:
    """The protein figures the report judges: perplexity at 32 context members over that at none
    (pooled over the families measured at both), and the fraction of samples that are novel HMM hits."""
    out: dict = {}
    if 0 in curve.sizes and 32 in curve.sizes:
        both = curve.measured_at(0) & curve.measured_at(32)
        pooled = curve.pooled_perplexity(both)
        ratio = (
            float(pooled[curve.sizes.index(32)] / pooled[curve.sizes.index(0)])
            if both.any()
            else float("nan")
        )
        out["ppl32_over_ppl0"] = ratio
        out["ppl32_over_ppl0_families"] = int(both.sum())
    out["novel_hmm_hit_fraction"] = totals["hmm_hit_novel"]
    return out


def _targets_section(targets: dict) -> str:
    lines = ["## Against the targets", ""]
    ratio = targets.get("ppl32_over_ppl0")
    if ratio is not None:
        verdict = "met" if ratio <= 0.7 else "not met"
        lines.append(
            f"- perplexity with 32 context members / with none: **{ratio:.3f}** over the "
            f"{targets['ppl32_over_ppl0_families']} families with a pool of 32 (target ≤ 0.7: {verdict})"
        )
    novel = targets.get("novel_hmm_hit_fraction")
    if novel is not None:
        verdict = "met" if novel >= 0.5 else "not met"
        lines.append(
            "- samples that hit the family HMM under 90 % identity to every context member: "
            f"**{100 * novel:.1f} %** (target ≥ 50 %: {verdict})"
        )
    return "\n".join(lines)
