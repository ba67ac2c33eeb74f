"""The skeleton that the protein and molecule generation recipes share: loading a causal model of
the right domain, and sampling after prompts of pool members through `biolm.inference.pipeline`."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from biolm.errors import InputError
from biolm.evaluation.incontext import derived_seed, prompt_ids
from biolm.models import BioLM


def load_generation_model(model_dir: str | os.PathLike, model: BioLM | None, device: str, kind: str) -> BioLM:
    """The model of `model_dir` (or `model` when already loaded), checked to be causal and of `kind`."""
    from biolm.inference.generate import check_can_generate
    from biolm.models.io import load

    model = load(model_dir, device=device) if model is None else model
    check_can_generate(model)
    found = getattr(model.tokenizer, "kind", None)
    if found != kind:
        label = {"protein": "a protein", "smiles": "a SMILES"}.get(kind, f"a {kind}")
        raise InputError(f"{model_dir}: {label} model is needed here, not a {model.tokenizer.kind} model")
    return model


def prompted_samples(
    model: BioLM,
    name: str,
    members: Sequence[np.ndarray],
    choose: Callable[[np.random.Generator], Sequence[int]],
    rng: np.random.Generator,
    *,
    num_samples: int,
    samples_per_prompt: int,
    max_new_tokens: int,
    sampling: dict,
    seed: int,
) -> Iterator[tuple[int, list[int], list[np.ndarray], list[str]]]:
    """Per prompt p: (p, the chosen member indices, the samples' token ids, their text).

    `choose(rng)` picks the members of each prompt (`<bos> m1 <sep> ... mk <sep>`); the prompt's
    `samples_per_prompt` samples (fewer for the last) are seeded by `derived_seed(seed, name, 3, p)`.
    """
    from biolm.inference.pipeline import sample_texts

    for p in range(math.ceil(num_samples / samples_per_prompt) if num_samples else 0):
        chosen = [int(i) for i in choose(rng)]
        ids, positions = prompt_ids([members[i] for i in chosen])
        count = min(samples_per_prompt, num_samples - p * samples_per_prompt)
        rows: list[np.ndarray] = []
        texts = sample_texts(
            model,
            count,
            max_new_tokens=max_new_tokens,
            prompt_ids=ids,
            position_ids=positions,
            rows=rows,
            seed=derived_seed(seed, name, 3, p),
            progress=False,
            **sampling,
        )
        yield p, chosen, rows, texts
