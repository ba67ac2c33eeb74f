"""Prompts for generation, laid out exactly as the training examples of in-context training.

A context file (a protein family: FASTA / A3M / Stockholm; a molecule set: .smi / .csv / .tsv) is read
by the model's domain (`biolm.domains.Domain.read_context`: which records are usable, in a seeded
order) and laid out by `biolm.data.layout` as training packs a set: `<bos> m1 <sep> m2 <sep> ... mk
<sep>`, with `position_ids` restarting at 0 at each delimiter. The prompt ends with the `<sep>` that
opens the new member, so the first generated token is that member's first token (position 1).

Fill-in-the-middle prompts (a protein with spans to fill) are in `biolm.inference.infill`.

In the in-context prompts a generated member ends, as in training, at `<sep>` (another member would
follow) or `<eos>` (the set ends): both are in `Prompt.stop_ids`. Every problem with a context file is a
one-line `InputError` naming the file (and the record or line where there is one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biolm.data.layout import DEFAULT_LAYOUT, Layout
from biolm.domains import IN_CONTEXT, domain_of
from biolm.errors import InputError
from biolm.tokenizers import Tokenizer

DEFAULT_TOKEN_BUDGET = 2048


@dataclass
class Prompt:
    """An in-context prompt: members of a family or a molecule set, then the start of a new member.

    Attributes:
        ids: [N] int64 token ids, `<bos> m1 <sep> ... mk <sep>`.
        position_ids: [N] int64, restarting at 0 at every `<bos>`/`<sep>` (as in training).
        n_members_used: k, the members in the prompt.
        n_members_total: records read from the file (valid or not).
        source: the context file.
        noun: what a member is called ("members", "molecules").
        members: the k members as written in the prompt (residues, or SMILES as tokenized), in order.
        reference: every distinct valid member of the file (canonical SMILES for molecules), those too
            long for the budget included, to judge the novelty of generated members against the whole
            context file, not only the prompt.
        dropped: records left out before packing, by reason (e.g. {"duplicate": 3}); reasons with a zero
            count are omitted. Members that were usable but did not fit the budget are not counted here
            (they are `len(reference) - n_members_used`).
        token_budget: the most tokens the prompt could take.
        stop_ids: tokens that end a generated member (`<sep>`, `<eos>`).
        next_position: position id of the first generated token (the `<sep>` before it is 0).
    """

    ids: np.ndarray
    position_ids: np.ndarray
    n_members_used: int
    n_members_total: int
    source: str
    noun: str = "members"
    members: list[str] = field(default_factory=list)
    reference: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    token_budget: int = DEFAULT_TOKEN_BUDGET
    stop_ids: tuple[int, ...] = DEFAULT_LAYOUT.stop_ids
    next_position: int = 1

    def describe(self) -> str:
        """One line for the CLI, e.g. `context x.a3m: 12 of 40 members, 1,003 tokens (budget 1,024); ...`."""
        line = (
            f"context {self.source}: {self.n_members_used:,} of {len(self.reference):,} {self.noun}, "
            f"{len(self.ids):,} tokens (budget {self.token_budget:,})"
        )
        if self.dropped:
            line += "; left out " + ", ".join(f"{n:,} {why}" for why, n in self.dropped.items())
        return line


def _check_budget(token_budget: int, max_members: int | None) -> None:
    if token_budget < 3:
        raise InputError(f"token budget must be at least 3 (<bos>, one token, <sep>), got {token_budget}")
    if max_members is not None and max_members < 1:
        raise InputError(f"max members must be at least 1, got {max_members}")


def context_prompt(
    path: str | os.PathLike,
    tokenizer: Tokenizer,
    *,
    seed: int = 0,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_members: int | None = None,
    column: str | None = None,
    randomize: bool = False,
    unknown: str | None = None,
    layout: Layout = DEFAULT_LAYOUT,
) -> Prompt:
    """A prompt of the members of a set (a protein family, a molecule set) for generating a new member.

    The model's domain reads the file (`biolm.domains.Domain.read_context`: for proteins FASTA / A3M /
    Stockholm, gaps removed; for molecules .smi/.csv/.tsv, canonical SMILES checked by RDKit; gzip is
    fine): empty, duplicate and unreadable members and those that alone exceed the budget are left out
    and counted; the rest are shuffled with `seed` and taken in that order while they fit
    `token_budget`, never cut, none skipped over, as training packs a set.

    Args:
        path: the context file.
        tokenizer: the model's tokenizer; every member is checked with it.
        seed: seeds the member order (the same seed gives the same prompt; a larger budget extends it).
        token_budget: the most prompt tokens (`<bos>` and the final `<sep>` included). To stay within
            the lengths the model was trained on, pass its `data.seq_len` less the expected length of
            the new member.
        max_members: at most this many members (None: as many as fit).
        column: the SMILES column of a molecule table (exact name); auto-detected if None.
        randomize: molecules only: write each as a seeded randomized SMILES (as training with
            `data.randomize_smiles=true`); False writes canonical SMILES.
        unknown: molecules only: "skip" (default: leave out molecules with tokens outside the
            vocabulary, with a warning), "error" or "replace" (read them as `<unk>`).
        layout: the in-context layout the model was trained with.

    Returns:
        The prompt; `ids` and `position_ids` are [N] int64.

    Raises:
        InputError: a missing, empty or malformed file, a member the tokenizer cannot read, no usable
            member, none short enough for the budget, `column` for a protein family, or a model whose
            domain is not trained in context (DNA).
    """
    path = Path(path)
    _check_budget(token_budget, max_members)
    domain = domain_of(tokenizer)
    domain.require(IN_CONTEXT, "in-context generation", path)
    found = domain.read_context(
        path,
        tokenizer,
        seed=seed,
        token_budget=token_budget,
        column=column,
        randomize=randomize,
        unknown=unknown,
    )
    taken = layout.choose([len(m) for m in found.ids], token_budget, max_members)
    prompt = layout.prompt([found.ids[i] for i in taken])
    return Prompt(
        ids=prompt.ids,
        position_ids=prompt.positions,
        n_members_used=len(taken),
        n_members_total=found.total,
        source=str(path),
        noun=domain.member_noun,
        members=[found.texts[i] for i in taken],
        reference=found.reference,
        dropped=found.dropped,
        token_budget=token_budget,
        stop_ids=layout.stop_ids,
        next_position=int(layout.next_positions(len(prompt), 1)[0]),
    )
