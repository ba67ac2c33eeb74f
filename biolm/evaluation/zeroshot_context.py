"""Homolog-conditioned zero-shot scores: a causal model reads homologs of the wild type first.

The context is the in-context training layout (`biolm.data.layout`):
`<bos> h1 <sep> h2 <sep> ... hk <sep>`, positions restarting at 0 on each delimiter, and every variant
is then read as the next member. The homologs come from an MSA (A3M, aligned FASTA or Stockholm,
gzip fine), gaps removed, in a seeded random order, as many as fit a token budget; copies of the wild
type are always left out (a model could otherwise copy the wild type), and with `max_identity` so are
homologs at least that identical to it over the query's match columns.

The context is read once per replicate, in pieces of `prefill_tokens` with the recurrent state passed
on, so memory does not grow with the context length; its state is then expanded over a batch of
variants (`biolm.evaluation.incontext.score_targets`). Two scores:

- `causal`: log p(variant, <sep> | context) - log p(wild type, <sep> | context), the whole member's
  likelihood and the delimiter that ends it, as a member ends inside a training pack;
- `fim` (models trained with fill-in-the-middle, the Prot-xLSTM protocol): for each mutated position
  i, the member `x_<i <fim_1> x_>i <fim_1>` after the context gives p(x_i | context, rest of the wild
  type); the score is the sum over mutations of log p(mutant_i) - log p(wild-type_i).

Replicates draw different homologs (seeds `seed`, `seed + 1`, ...) and their scores are averaged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from biolm.data.layout import DEFAULT_LAYOUT, model_layout
from biolm.domains import HOMOLOG_CONTEXT, domain_of
from biolm.domains.protein import encode_unaligned
from biolm.errors import ArgumentError, InputError
from biolm.evaluation.incontext import score_targets
from biolm.evaluation.options import DEFAULT_PREFILL_TOKENS, ContextOptions
from biolm.evaluation.zeroshot import encode_sequence, marginal_scores, mutated_positions
from biolm.inference.decoding import repeat_state
from biolm.inference.sample_tokens import prefill as prefill_prompt
from biolm.io.dms import Scan
from biolm.models import BioLM


@dataclass
class Homologs:
    """The usable homologs of an MSA for a context, as token ids, with what was left out."""

    source: str
    ids: list[np.ndarray]
    total: int
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass
class ContextScores:
    """Scores of a scan's variants after homolog contexts.

    Attributes:
        scores: [N] mean over replicates.
        replicates: [R, N] per replicate.
        members: [R] homologs in each replicate's context.
        tokens: [R] context tokens of each replicate.
        homologs: the pool they were drawn from.
        method: a one-line description for the report.
    """

    scores: np.ndarray
    replicates: np.ndarray
    members: list[int]
    tokens: list[int]
    homologs: Homologs
    method: str


def read_homologs(options: ContextOptions, scan: Scan, tokenizer) -> Homologs:
    """The MSA's homologs as token ids (gaps removed), without copies of the wild type.

    Raises:
        InputError: as `biolm.evaluation.site_independent.read_alignment` and `check_query` (naming the
            file and the record), a residue the tokenizer cannot read, or no homolog left.
    """
    from biolm.evaluation.site_independent import check_query, identity_to_query
    from biolm.io.msa import read_alignment

    path = Path(options.path)
    alignment = check_query(read_alignment(path), scan.wild_type)
    identity = identity_to_query(alignment) if options.max_identity is not None else None
    seen: set[str] = set()
    ids, n_wild_type, n_identical, n_duplicate = [], 0, 0, 0
    for index, (name, seq) in enumerate(zip(alignment.names, alignment.sequences, strict=True)):
        if seq == scan.wild_type:
            n_wild_type += 1
            continue
        if identity is not None and identity[index] >= options.max_identity:
            n_identical += 1
            continue
        if seq in seen:
            n_duplicate += 1
            continue
        seen.add(seq)
        ids.append(encode_unaligned(tokenizer, path, name, seq))
    dropped = {"copies of the wild type": n_wild_type, "duplicates": n_duplicate}
    if options.max_identity is not None:
        dropped[f"at least {options.max_identity:.0%} identical to the wild type"] = n_identical
    if not ids:
        raise InputError(
            f"{path}: no usable homologs for the context ({len(alignment.names)} records; "
            + ", ".join(f"{n} {why}" for why, n in dropped.items() if n)
            + ")"
        )
    return Homologs(str(path), ids, len(alignment.names), {k: v for k, v in dropped.items() if v})


def draw_context(homologs: Homologs, options: ContextOptions, replicate: int) -> list[np.ndarray]:
    """The homologs of one replicate: a seeded order, taken while they fit the token budget.

    Unlike a generation prompt, a homolog too long for what is left of the budget is skipped, not the
    end of the context: an MSA mixes fragments and full-length sequences, and the budget should be
    filled. The same seed gives the same context.
    """
    order = np.random.default_rng(options.seed + replicate).permutation(len(homologs.ids))
    lengths = [len(homologs.ids[i]) for i in order]
    taken = DEFAULT_LAYOUT.choose(lengths, options.token_budget, options.max_members, skip_long=True)
    return [homologs.ids[order[j]] for j in taken]


def prefill(model: BioLM, members: list[np.ndarray], piece_tokens: int = DEFAULT_PREFILL_TOKENS):
    """(state, [vocab] next-token logits, tokens read) after `<bos> m1 <sep> ... mk <sep>`.

    The prompt is read `piece_tokens` at a time with the state passed on
    (`biolm.inference.sample_tokens.prefill`), which gives the same state as one pass (the kernels'
    state-passing contract) with memory bounded by the piece.
    """
    prompt = model_layout(model).prompt(members)
    read = prefill_prompt(model, prompt.ids, prompt.positions, chunk_len=piece_tokens)
    return read.state, read.logits, read.length


@torch.no_grad()
def causal_member_log_likelihoods(model: BioLM, state, logits, sequences: list[np.ndarray]) -> np.ndarray:
    """[N] log p(sequence, <sep> | prompt) in nats (float64), each read as the next member."""
    layout = model_layout(model)  # a member ends where the next one would open
    targets = [np.concatenate([s, [layout.separator_id]]).astype(np.int64) for s in sequences]
    return -score_targets(model, state, logits, targets, layout=layout)


@torch.no_grad()
def fim_log_probs(
    model: BioLM, state, wild_type: np.ndarray, positions: list[int], *, batch_rows: int = 32
) -> dict[int, np.ndarray]:
    """{1-based position i: [vocab] log p(x_i | prompt, wild type without x_i)} (float64), from the
    wild type with x_i masked, written as the model's layout writes a FIM target (biolm's
    `x_<i <fim_1> x_>i <fim_1>`; a converted Prot-xLSTM's in-place mask), read after the prompt whose
    state is `state`."""
    device = next(model.parameters()).device
    sentinel = model.tokenizer.sentinel_ids[0]
    layout = model_layout(model)
    out = {}
    for start in range(0, len(positions), batch_rows):
        chunk = positions[start : start + batch_rows]
        targets = [layout.fim_target(wild_type, p, sentinel) for p in chunk]
        # Every row has the same length (the wild type's and the sentinels).
        ids = torch.from_numpy(np.stack([t[0] for t in targets])).to(device)
        where = torch.from_numpy(np.stack([t[1] for t in targets])).to(device)
        batch_state = repeat_state(state, len(chunk))
        logits = model(ids, state=batch_state, position_ids=where).logits[:, -1]
        logp = torch.log_softmax(logits.double(), dim=-1).cpu().numpy()
        for r, p in enumerate(chunk):
            out[p] = logp[r]
    return out


def check_context_model(model: BioLM, score: str) -> None:
    """A context needs a causal model; the fim score a tokenizer with FIM sentinels."""
    if model.config.stateless:
        raise ArgumentError(
            "{context} needs a causal model: a bidirectional or RC-equivariant model cannot read a "
            "context before the sequence",
            "context",
        )
    domain = domain_of(model.tokenizer)
    if not domain.supports(HOMOLOG_CONTEXT):
        raise ArgumentError(
            f"{{context}} (homologs) needs a protein model, not a {domain.title} model", "context"
        )
    if score == "fim" and not getattr(model.tokenizer, "sentinel_ids", []):
        raise ArgumentError(
            "{score} fim needs a model trained with fill-in-the-middle (task.objective=fim); this model's "
            "tokenizer has no <fim_k> sentinels",
            "score",
        )


def score_scan_in_context(
    model: BioLM, scan: Scan, options: ContextOptions, *, progress: bool = False
) -> ContextScores:
    """Scores of every variant of `scan` after homolog contexts drawn from `options.path`.

    Raises:
        InputError: as `read_homologs`, options out of range, or a model that cannot read a context.
    """
    check_context_model(model, options.score)
    homologs = read_homologs(options, scan, model.tokenizer)
    wt = encode_sequence(model, scan.wild_type, "wild type", scan.source)
    variants = [
        encode_sequence(model, s, f"line {n}", scan.source)
        for s, n in zip(scan.sequences, scan.lines, strict=True)
    ]
    positions = mutated_positions(scan)
    rows, members, tokens = [], [], []
    with tqdm(
        total=options.replicates, unit="context", desc="in-context scoring", disable=not progress
    ) as bar:
        for r in range(options.replicates):
            context = draw_context(homologs, options, r)
            state, logits, length = prefill(model, context, options.prefill_tokens)
            if options.score == "causal":
                ll = causal_member_log_likelihoods(model, state, logits, [wt, *variants])
                rows.append(ll[1:] - ll[0])
            else:
                logp = fim_log_probs(model, state, wt, positions)
                rows.append(marginal_scores(model, scan, logp))
            members.append(len(context))
            tokens.append(length)
            bar.update(1)
    replicates = np.stack(rows)
    what = (
        "log-likelihood ratio after the context (causal)"
        if options.score == "causal"
        else ("fill-in-the-middle masked marginal after the context")
    )
    method = (
        f"{what}; {options.replicates} context replicate(s) of up to {options.token_budget:,} tokens "
        f"(seeds {options.seed}..{options.seed + options.replicates - 1}), mean of the replicates"
    )
    return ContextScores(replicates.mean(axis=0), replicates, members, tokens, homologs, method)
