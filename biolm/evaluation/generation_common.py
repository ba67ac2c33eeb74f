"""The skeleton that the protein and molecule generation recipes share: loading a causal model of
the right domain, splitting each set into held-out members and a context pool, the gain curve,
sampling after prompts of pool members, and writing the report. Each recipe keeps only what is its
own: reading its sets, choosing a prompt's members, measuring the samples, its tables and plots.

Every setting comes from one `GenerationOptions` (`biolm.evaluation.options`), checked when it was
made, so nothing here checks a count again.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from biolm.data.layout import model_layout
from biolm.domains import domain_of, get_domain
from biolm.errors import InputError
from biolm.evaluation.incontext import GainCurve, derived_seed, gain_curve, split_members
from biolm.evaluation.options import GenerationOptions
from biolm.evaluation.report import Plot, write_report

if TYPE_CHECKING:
    from biolm.models import BioLM

T = TypeVar("T")


@dataclass
class GenerationReport:
    """What a generation recipe found, before it is written (`write_generation_report`).

    Attributes:
        facts: the report's header lines, after the model's; the wall time is added last.
        sections: markdown blocks after the header.
        plots: PNG name -> drawing.
        numbers: the content of metrics.json.
        result: what the recipe function returns (the same numbers, with Python objects).
        files: further files of the report directory, name -> text.
    """

    facts: dict[str, str]
    sections: list[str]
    plots: dict[str, Plot]
    numbers: dict
    result: dict
    files: dict[str, str] = field(default_factory=dict)


def load_generation_model(
    model_dir: str | os.PathLike, model: BioLM | None, device: str, domain: str
) -> BioLM:
    """The model of `model_dir` (or `model` when already loaded), checked to be causal and of `domain`."""
    from biolm.inference.sample_tokens import check_can_generate
    from biolm.models.io import load

    model = load(model_dir, device=device) if model is None else model
    check_can_generate(model)
    wanted, found = get_domain(domain), domain_of(model.tokenizer)
    if found is not wanted:
        raise InputError(f"{model_dir}: a {wanted.title} model is needed here, not a {found.title} model")
    return model


def split_set(name: str, size: int, options: GenerationOptions) -> tuple[np.ndarray, np.ndarray]:
    """(held-out indices, pool indices) of a set of `size` distinct members: the same split as the
    gain curve's, so a held-out member is never in a sampling prompt either."""
    return split_members(name, size, options.held_out, options.seed)


def prompt_rng(name: str, options: GenerationOptions) -> np.random.Generator:
    """The stream that picks a set's prompt members: one per set and seed, apart from the split's
    stream and the samples' (`derived_seed`), so that changing one leaves the others as they were."""
    return np.random.default_rng([options.seed, 2, *name.encode()])


def set_gain_curve(
    model: BioLM, sets: Mapping[str, Sequence[np.ndarray]], options: GenerationOptions, progress: bool
) -> GainCurve:
    """The in-context gain curve of every set (name -> its members' token ids)."""
    return gain_curve(
        model,
        sets,
        options.sizes,
        held_out=options.held_out,
        draws=options.draws,
        seed=options.seed,
        progress=progress,
    )


def over_sets(items: Iterable[T], desc: str, unit: str, progress: bool) -> Iterable[T]:
    """`items` with a progress bar, when asked for."""
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit=unit, disable=not progress)


def prompted_samples(
    model: BioLM,
    name: str,
    members: Sequence[np.ndarray],
    choose: Callable[[np.random.Generator], Sequence[int]],
    rng: np.random.Generator,
    options: GenerationOptions,
    max_new_tokens: int,
) -> Iterator[tuple[int, list[int], list[np.ndarray], list[str]]]:
    """Per prompt p: (p, the chosen member indices, the samples' token ids, their text).

    `choose(rng)` picks the members of each prompt (`<bos> m1 <sep> ... mk <sep>`); the
    `options.num_samples` samples come `options.samples_per_prompt` to a prompt (fewer from the last),
    each prompt's seeded by `derived_seed(seed, name, 3, p)`.
    """
    from biolm.inference.generate import sample_texts

    per_prompt = options.samples_per_prompt
    for p in range(math.ceil(options.num_samples / per_prompt)):
        chosen = [int(i) for i in choose(rng)]
        prompt = model_layout(model).prompt([members[i] for i in chosen])
        rows: list[np.ndarray] = []
        texts = sample_texts(
            model,
            min(per_prompt, options.num_samples - p * per_prompt),
            max_new_tokens=max_new_tokens,
            prompt_ids=prompt.ids,
            position_ids=prompt.positions,
            rows=rows,
            seed=derived_seed(options.seed, name, 3, p),
            progress=False,
            **options.sampling,
        )
        yield p, chosen, rows, texts


def sampler_text(options: GenerationOptions) -> str:
    """The sampler's settings for the report's header, e.g. `temperature 1.0, top_p 0.9`."""
    return ", ".join(f"{k} {v}" for k, v in options.sampling.items() if v is not None)


def write_generation_report(
    out_dir: str | os.PathLike,
    title: str,
    model_dir: str | os.PathLike,
    started: float,
    report: GenerationReport,
) -> dict:
    """Write the report directory (the model first in the header, the wall time since `started`
    last) and return the recipe's result."""
    facts = {
        "model": str(model_dir),
        **report.facts,
        "wall time": f"{time.perf_counter() - started:.0f} s",
    }
    write_report(
        out_dir, title, facts, {}, report.plots, report.numbers, sections=report.sections, files=report.files
    )
    return report.result
