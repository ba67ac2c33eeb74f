"""`biolm.generate`: sample new sequences in one call, unconditionally, in context or infilled, and
post-process them as `biolm generate` does (the CLI is a thin layer over this module).

The token-level engine is `biolm.inference.sample_tokens`; this module chooses the prompt (`<bos>` +
prompt, or an in-context prompt read from a file), the stop rules of the domain (DNA runs to the
length limit with no special token, proteins and SMILES end at `<eos>`/`<sep>`), decodes the samples
and cleans them (the domain's `clean_samples`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biolm.domains import INFILL, Domain, domain_of, get_domain
from biolm.errors import ArgumentError
from biolm.inference.arguments import check_generate_arguments
from biolm.models import BioLM


@dataclass
class Generated:
    """What `biolm.generate` returns.

    Attributes:
        sequences: the samples after post-processing, in sampling order: DNA as sampled, proteins
            without empty and repeated samples, molecules as valid canonical SMILES, de-duplicated.
        domain: the name of the model's domain (`biolm.domains`): "dna", "protein" or "chem".
        counts: how many passed each post-processing stage (the domain's `clean_samples`), e.g.
            {"generated": 8, "non_empty": 8, "unique": 7}; None for DNA.
        max_new_tokens: the length limit used.
        context: the in-context prompt (`biolm.inference.context.Prompt`), when `context` was given.
        unfinished: infilling only: samples that did not close every span within `max_new_tokens`
            (left out of `sequences`).
    """

    sequences: list[str]
    domain: str
    counts: dict[str, int] | None = None
    max_new_tokens: int = 0
    context: Any = None
    unfinished: int = 0
    raw: list[str] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.sequences)


def generate(
    model: BioLM | str | os.PathLike,
    n: int = 5,
    *,
    max_new_tokens: int | None = None,
    prompt: str = "",
    context: str | os.PathLike | None = None,
    token_budget: int | None = None,
    column: str | None = None,
    infill: str | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    seed: int = 0,
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = False,
) -> Generated:
    """Sample `n` new sequences from a causal biolm model.

    Example (`model_dir`: a protein model directory, e.g. runs/protein/model)::

        >>> import biolm
        >>> out = biolm.generate(model_dir, n=3, max_new_tokens=12, seed=1)
        >>> out.counts["generated"], len(out.sequences) <= 3
        (3, True)
        >>> path = biolm.write_samples(out, "samples.fasta")  # FASTA: >sample_1, >sample_2, ...

    (`tests/inference/test_generate_api.py` runs this example on a tiny model.)

    Args:
        model: a loaded `BioLM` (with `model.tokenizer`) or a model directory.
        n: number of samples.
        max_new_tokens: most tokens per sample, the end token included (None: the domain's default,
            `Domain.max_new_tokens`: DNA 200, protein 1024, SMILES 256).
        prompt: text each sample continues (not part of the sample); after the context if both.
        context: a protein family (FASTA/A3M/Stockholm) or molecule set (.smi/.csv/.tsv) file packed
            into the prompt as in in-context training (`biolm.inference.context.context_prompt`);
            each sample is a new member.
        token_budget: most tokens of the context prompt (None: 2048).
        column: the SMILES column of a context table (None: found by name).
        infill: a protein template with spans to fill, e.g. "MKT[?]LLV[5]W" (FIM models only); not
            together with `prompt` or `context`.
        temperature, top_k, top_p, min_p: logit filters (`biolm.inference.sampling.filter_logits`);
            temperature 0 is greedy: every sample is the most likely continuation (the seed still
            draws the context members).
        seed: >= 0; the samples depend only on the seed (and the context draw), not on `batch_size`.
        batch_size: samples decoded together.
        device: where to load a model given as a directory.
        progress: show a progress bar of generated tokens.

    Returns:
        `Generated`: the post-processed samples and the counts of each stage.

    Raises:
        ArgumentError (an `InputError`): a bad argument, named.
        InputError: a model that cannot generate (bidirectional / RC-equivariant), an unreadable
            context file, a bad infill template.
    """
    check_generate_arguments(
        n, max_new_tokens, batch_size, temperature, top_k, top_p, min_p, seed, prompt, context, infill,
        token_budget, column,
    )  # fmt: skip
    from biolm.inference.sample_tokens import check_can_generate

    if not isinstance(model, BioLM):
        from biolm.models.io import load

        model = load(model, device=device)
    check_can_generate(model)
    domain = domain_of(model.tokenizer)
    max_new = max_new_tokens or domain.max_new_tokens
    sampling = dict(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        seed=seed,
        batch_size=batch_size,
        progress=progress,
    )
    if infill is not None:
        from biolm.inference.infill import infill_prompt
        from biolm.inference.sample_tokens import sample_infill_tokens

        domain.require(INFILL, "infilling")
        filled = sample_infill_tokens(
            model, infill_prompt(infill, model.tokenizer), n, max_new_tokens=max_new, **sampling
        )
        done = [seq for seq in filled if seq is not None]
        result = postprocess(done, domain)
        result.max_new_tokens, result.unfinished = max_new, len(filled) - len(done)
        return result
    ids, positions, prompt_info = _prompt(model, prompt, context, token_budget, column, seed)
    texts = sample_texts(model, n, max_new_tokens=max_new, prompt_ids=ids, position_ids=positions, **sampling)
    result = postprocess(texts, domain, None if prompt_info is None else prompt_info.reference)
    result.max_new_tokens, result.context = max_new, prompt_info
    return result


def sample_texts(
    model: BioLM,
    n: int,
    *,
    max_new_tokens: int,
    prompt_ids: Any = None,
    position_ids: Any = None,
    rows: list | None = None,
    **sampling: Any,
) -> list[str]:
    """Decoded samples after token ids, with the stop rules of the model's domain.

    A domain whose samples do not end (`Domain.ends_samples` False: DNA models are trained on genome
    windows without an end token) gives samples of exactly `max_new_tokens` tokens and no special
    token; other samples end at `<eos>`/`<sep>`.

    Args:
        model: a causal `BioLM` with its tokenizer.
        n: number of samples.
        max_new_tokens: most tokens per sample.
        prompt_ids: [L] ids to continue (None: `<bos>`); position_ids: [L] their positions (None:
            restarting at each `<bos>`/`<sep>`).
        rows: if a list, the samples' token id arrays are appended to it.
        **sampling: temperature, top_k, top_p, min_p, seed, batch_size, progress of
            `biolm.inference.sample_tokens.sample_tokens`.

    Returns:
        The n samples as text, prompt and stop token not included.
    """
    from biolm.inference.sample_tokens import sample_tokens

    tok = model.tokenizer
    if domain_of(tok).ends_samples:
        stops = dict(stop_ids=None, banned_ids=None)
    else:
        stops = dict(stop_ids=[], banned_ids=tok.special_ids)
    samples = sample_tokens(
        model,
        n,
        max_new_tokens=max_new_tokens,
        prompt_ids=prompt_ids,
        prompt_position_ids=position_ids,
        **stops,
        **sampling,
    )
    if rows is not None:
        rows.extend(samples)
    return [tok.decode(s) for s in samples]


def postprocess(
    texts: Sequence[str], domain: Domain | str, reference: Sequence[str] | None = None
) -> Generated:
    """Clean samples as `biolm generate` does, by the domain's `clean_samples`: molecules checked,
    canonical and distinct; proteins non-empty and distinct; DNA kept as sampled. `reference` gives the
    "novel" count."""
    domain = get_domain(domain) if isinstance(domain, str) else domain
    texts = list(texts)
    kept, counts = domain.clean_samples(texts, reference)
    return Generated(kept, domain.name, counts, raw=texts)


def write_samples(samples: Generated, path: str | os.PathLike) -> Path:
    """Write `generate`'s samples atomically in their domain's format: molecules one SMILES a line,
    else FASTA (sample_1, ...)."""
    from biolm.inference.postprocess import write_samples_as

    return write_samples_as(get_domain(samples.domain).output, path, samples.sequences)


def _prompt(model: BioLM, prompt: str, context, token_budget: int | None, column: str | None, seed: int):
    """(ids, positions or None, context Prompt or None) of `<bos>` + prompt or context + prompt."""
    from biolm.tokenizers import TokenizationError

    tok = model.tokenizer
    try:
        prompt_text = tok.encode(prompt, record="prompt") if prompt else np.zeros(0, np.int64)
    except TokenizationError as err:
        raise ArgumentError(f"{{prompt}}: {err.reason}", "prompt") from None
    if context is None:
        return np.concatenate([[tok.bos_id], prompt_text]).astype(np.int64), None, None
    from biolm.data.layout import model_layout
    from biolm.inference.context import DEFAULT_TOKEN_BUDGET, context_prompt

    budget = DEFAULT_TOKEN_BUDGET if token_budget is None else token_budget
    found = context_prompt(
        Path(context), tok, seed=seed, token_budget=budget, column=column, layout=model_layout(model)
    )
    # The prompt starts the new member: its positions continue from the context's <sep>.
    ids = np.concatenate([found.ids, prompt_text])
    positions = np.concatenate([found.position_ids, found.next_position + np.arange(len(prompt_text))])
    return ids, positions, found
