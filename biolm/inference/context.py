"""Prompts for generation, laid out exactly as the training examples of the matching objective.

Two kinds of prompt, each built with the training-side formatting functions (not a copy of them), so
that a model trained with in-context packing or fill-in-the-middle sees at generation time the format
it was trained on:

- `family_prompt`: homologous proteins (FASTA / A3M / Stockholm) as context, packed as
  `biolm.data.packing.pack_members` packs a family: `<bos> m1 <sep> m2 <sep> ... mk <sep>`, with
  `position_ids` restarting at 0 at each delimiter. The prompt ends with the `<sep>` that opens the new
  member, so the first generated token is that member's first residue (position 1).
- `molecule_set_prompt`: a molecule set (.smi / .csv / .tsv) as context, packed as
  `biolm.data.molsets.packed_example` packs a set, ending in the same way.

Fill-in-the-middle prompts (a protein with spans to fill) are in `biolm.inference.infill`.

In the in-context prompts a generated member ends, as in training, at `<sep>` (another member would
follow) or `<eos>` (the set ends): both are in `Prompt.stop_ids`. Every problem with a context file is a
one-line `InputError` naming the file (and the record or line where there is one).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biolm.errors import ArgumentError, InputError
from biolm.tokenizers import TokenizationError, Tokenizer
from biolm.tokenizers.base import BOS_ID, EOS_ID, SEP_ID

DEFAULT_TOKEN_BUDGET = 2048
_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass
class Prompt:
    """An in-context prompt: members of a family or a molecule set, then the start of a new member.

    Attributes:
        ids: [N] int64 token ids, `<bos> m1 <sep> ... mk <sep>`.
        position_ids: [N] int64, restarting at 0 at every `<bos>`/`<sep>` (as in training).
        n_members_used: k, the members in the prompt.
        n_members_total: records read from the file (valid or not).
        source: the context file.
        kind: "family" or "molecules".
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
    kind: str
    members: list[str] = field(default_factory=list)
    reference: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    token_budget: int = DEFAULT_TOKEN_BUDGET
    stop_ids: tuple[int, ...] = (SEP_ID, EOS_ID)
    next_position: int = 1

    def describe(self) -> str:
        """One line for the CLI, e.g. `context x.a3m: 12 of 40 members, 1,003 tokens (budget 1,024); ...`."""
        noun = "molecules" if self.kind == "molecules" else "members"
        line = (
            f"context {self.source}: {self.n_members_used:,} of {len(self.reference):,} {noun}, "
            f"{len(self.ids):,} tokens (budget {self.token_budget:,})"
        )
        if self.dropped:
            line += "; left out " + ", ".join(f"{n:,} {why}" for why, n in self.dropped.items())
        return line


def _counts(**reasons: int) -> dict[str, int]:
    return {why.replace("_", " "): n for why, n in reasons.items() if n}


def _check_budget(token_budget: int, max_members: int | None) -> None:
    if token_budget < 3:
        raise InputError(f"token budget must be at least 3 (<bos>, one token, <sep>), got {token_budget}")
    if max_members is not None and max_members < 1:
        raise InputError(f"max members must be at least 1, got {max_members}")


def _greedy_count(lengths: Sequence[int], token_budget: int, max_members: int | None) -> int:
    """How many leading members fit: the prompt costs 1 + sum(n_i + 1) tokens. As in training packing,
    the first member that does not fit ends the prompt (no member is cut, none is skipped over)."""
    used, count = 1, 0
    for n in lengths:
        if used + n + 1 > token_budget or (max_members is not None and count >= max_members):
            break
        used += n + 1
        count += 1
    return count


# --- protein families ---------------------------------------------------------------------------------


def _read_family_records(path: Path) -> list[tuple[str, str]]:
    """(name, unaligned sequence) of every record of a FASTA/A3M/Stockholm file, all alignments of a
    Stockholm file together; empty sequences are kept (as "") for the caller to count."""
    # read_protein_file rejects a record that is empty after gap removal, which is right for training
    # data but too strict for a context file; its lower-level parser is used instead (see the report).
    from biolm.io.proteins import clean_sequence, iter_alignments, sniff_format

    fmt = sniff_format(path)
    records = []
    try:
        for raw in iter_alignments(path, fmt):
            for name, text in raw:
                records.append((name or f"#{len(records) + 1}", clean_sequence(text)))
    # e.g. a truncated or corrupt gzip file, found only past its first line
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"{path}: cannot read ({err})") from None
    return records


def family_prompt(
    path: str | os.PathLike,
    tokenizer: Tokenizer,
    *,
    seed: int = 0,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_members: int | None = None,
) -> Prompt:
    """A prompt of homologous proteins for generating a new member of their family.

    The file's records are read as raw proteins (gaps `-`/`.` removed, A3M/Stockholm inserts
    upper-cased, a final `*` dropped; gzip is fine). Empty and duplicate sequences are left out and
    counted, as are members that alone exceed the budget; the rest are shuffled with `seed` and taken in
    that order while they fit `token_budget`, never cut, as training packs a family
    (`biolm.data.packing.pack_members`).

    Args:
        path: FASTA, A3M or Stockholm file, optionally gzipped.
        tokenizer: the model's protein tokenizer; every member is checked with it.
        seed: seeds the member order (the same seed gives the same prompt).
        token_budget: the most prompt tokens (`<bos>` and the final `<sep>` included). To stay within
            the lengths the model was trained on, pass its `data.seq_len` less the expected length of
            the new member.
        max_members: at most this many members (None: as many as fit).

    Returns:
        The prompt; `ids` and `position_ids` are [N] int64.

    Raises:
        InputError: a missing, empty or malformed file, a residue the tokenizer cannot read (naming the
            record), no usable member, or no member short enough for the budget.
    """
    from biolm.data.packing import pack_members

    path = Path(path)
    _check_budget(token_budget, max_members)
    if getattr(tokenizer, "kind", None) != "protein":
        raise InputError(
            f"{path}: a protein family is context for a protein model, not a {tokenizer.kind} model"
        )
    records = _read_family_records(path)
    seen: set[str] = set()
    sequences, ids = [], []
    n_empty = n_duplicate = 0
    for name, seq in records:
        if not seq:
            n_empty += 1
            continue
        if seq in seen:
            n_duplicate += 1
            continue
        seen.add(seq)
        try:
            ids.append(tokenizer.encode(seq, record=name).astype(np.int64))
        except TokenizationError as err:
            raise InputError(f"{path}: {err.reason} (after removing gaps)") from None
        sequences.append(seq)
    # Shuffle before leaving out the members too long for the budget, so that one seed gives the same
    # order whatever the budget (a larger budget extends the same prompt).
    shuffled = np.random.default_rng(seed).permutation(len(ids))
    order = [i for i in shuffled if len(ids[i]) + 2 <= token_budget]
    n_long = len(ids) - len(order)
    if not order:
        why = f"{n_long} longer than the token budget of {token_budget}" if n_long else "all empty"
        raise InputError(f"{path}: no usable protein for the context ({len(records)} records; {why})")
    count = _greedy_count([len(ids[i]) for i in order], token_budget, max_members)
    chosen = [ids[i] for i in order[:count]]
    # The empty last member makes pack_members end the prompt with the <sep> that opens a new member.
    n_tokens = 1 + sum(len(m) + 1 for m in chosen)
    example, packed = pack_members([*chosen, _EMPTY], n_tokens)
    if packed != count + 1:  # pragma: no cover - pack_members changed its budget rule
        raise RuntimeError("pack_members did not pack every chosen member")
    return Prompt(
        ids=example["input_ids"].numpy(),
        position_ids=example["position_ids"].numpy(),
        n_members_used=count,
        n_members_total=len(records),
        source=str(path),
        kind="family",
        members=[sequences[i] for i in order[:count]],
        reference=sequences,
        dropped=_counts(empty=n_empty, duplicate=n_duplicate, longer_than_budget=n_long),
        token_budget=token_budget,
    )


# --- molecule sets ------------------------------------------------------------------------------------


def molecule_set_prompt(
    path: str | os.PathLike,
    tokenizer: Tokenizer,
    *,
    seed: int = 0,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_members: int | None = None,
    column: str | None = None,
    randomize: bool = False,
    unknown: str = "skip",
) -> Prompt:
    """A prompt of molecules for generating new members of the set (e.g. more actives of a target).

    Molecules are read as training reads them (`biolm.data.chem.read_molecules`): RDKit checks every
    SMILES and keeps its canonical form; invalid ones are skipped with one warning naming the file and
    lines. Duplicates (the same canonical SMILES), molecules with tokens outside the model's vocabulary
    (under `unknown="skip"`) and molecules that alone exceed the budget are left out and counted. The
    rest are shuffled with `seed` and packed as `biolm.data.molsets.packed_example` packs a set.

    Args:
        path: .smi/.smiles/.txt (SMILES, then optionally a name) or a .csv/.tsv table, optionally .gz.
        tokenizer: the model's SMILES tokenizer.
        seed: seeds the order (and the randomized SMILES).
        token_budget: the most prompt tokens (`<bos>` and the final `<sep>` included).
        max_members: at most this many molecules (None: as many as fit).
        column: the SMILES column of a table (exact name); auto-detected if None.
        randomize: write each molecule as a seeded randomized SMILES, as training with
            `data.randomize_smiles=true` does; False (default) writes canonical SMILES, the form of the
            validation packs, which every such model has also seen.
        unknown: "skip" (leave out molecules with tokens outside the vocabulary, with a warning),
            "error" (stop at the first) or "replace" (read those tokens as `<unk>`).

    Returns:
        The prompt; `reference` holds the canonical SMILES of every usable molecule.

    Raises:
        InputError: missing, empty or unreadable file, unknown extension, missing column, no valid
            molecule, no molecule short enough for the budget.
    """
    from biolm.data.chem import read_molecules
    from biolm.data.chem_dataset import MoleculeEncoder, example_seed
    from biolm.data.molsets import packed_example
    from biolm.io.smiles import SMI_SUFFIXES, warn_skipped
    from biolm.io.tables import TABLE_SUFFIXES

    path = Path(path)
    _check_budget(token_budget, max_members)
    if getattr(tokenizer, "kind", None) != "smiles":
        raise InputError(
            f"{path}: a molecule set is context for a SMILES model, not a {tokenizer.kind} model"
        )
    name = path.name.lower().removesuffix(".gz")
    if not name.endswith(SMI_SUFFIXES + TABLE_SUFFIXES):
        raise InputError(
            f"{path}: unknown molecule file extension; expected {' '.join(SMI_SUFFIXES + TABLE_SUFFIXES)}, "
            "optionally .gz"
        )
    if column is not None and not name.endswith(TABLE_SUFFIXES):
        raise ArgumentError(f"{path}: {{column}} applies to CSV/TSV tables, not to SMILES files", "column")
    try:
        molecules = read_molecules(path, column)
    except ArgumentError as err:
        raise err.renamed(smiles_column="column") from None
    n_invalid = molecules.total - len(molecules)
    first: dict[str, int] = {}
    for i, smiles in enumerate(molecules.smiles):
        first.setdefault(smiles, i)
    unique = molecules.subset(sorted(first.values()))
    n_duplicate = len(molecules) - len(unique)
    # A budget that nothing exceeds: the budget check below names --token-budget, not data.seq_len.
    checker = MoleculeEncoder(tokenizer, unknown, max_tokens=1 << 30)
    usable = checker.check(unique)
    n_unknown = len(unique) - len(usable)
    encoder = MoleculeEncoder(checker.tokenizer, unknown, max_tokens=token_budget)
    canonical_ids = [encoder.encode(s) for s in usable.smiles]
    fits = [i for i, m in enumerate(canonical_ids) if encoder.fits(m)]
    fit_set = set(fits)
    too_long = [(usable.lines[i], usable.smiles[i]) for i in range(len(usable)) if i not in fit_set]
    if too_long:
        warn_skipped(path, f"over the token budget of {token_budget}", too_long, molecules.total)
    if not fits:
        raise InputError(
            f"{path}: no usable molecule for the context ({molecules.total} records, {len(usable)} usable, "
            f"none within the token budget of {token_budget})"
        )
    # As for families: shuffle first, so that the order does not depend on the budget.
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(usable)) if i in fit_set]
    chosen: list[np.ndarray] = []
    used = 1  # <bos>; each molecule then costs its tokens and the <sep> after it
    for i in order:
        # Randomized forms are drawn only for the molecules that are tried, not for the whole file.
        ids = (
            encoder.training_ids(usable.smiles[i], example_seed(seed, 0, i))
            if randomize
            else canonical_ids[i]
        )
        if used + len(ids) + 1 > token_budget or (max_members is not None and len(chosen) >= max_members):
            break
        chosen.append(ids.astype(np.int64))
        used += len(ids) + 1
    count = len(chosen)
    example = packed_example([*chosen, _EMPTY], BOS_ID, SEP_ID, EOS_ID)
    # packed_example ends with <eos> as an input; the prompt stops at the <sep> before it.
    return Prompt(
        ids=example["input_ids"].numpy()[:-1],
        position_ids=example["position_ids"].numpy()[:-1],
        n_members_used=count,
        n_members_total=molecules.total,
        source=str(path),
        kind="molecules",
        members=[tokenizer.decode(m) for m in chosen],
        reference=list(usable.smiles),
        dropped=_counts(
            invalid=n_invalid,
            duplicate=n_duplicate,
            unknown_tokens=n_unknown,
            longer_than_budget=len(too_long),
        ),
        token_budget=token_budget,
    )


def context_prompt(
    path: str | os.PathLike,
    tokenizer: Tokenizer,
    *,
    seed: int = 0,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
    max_members: int | None = None,
    column: str | None = None,
    randomize: bool = False,
) -> Prompt:
    """`family_prompt` for a protein model, `molecule_set_prompt` for a SMILES model (the arguments are
    theirs; `column` and `randomize` are for molecules, and `randomize` is ignored for proteins).

    Raises:
        InputError: as those, `column` with a protein model, or a model of another kind (DNA models are
            not trained in context).
    """
    kind = getattr(tokenizer, "kind", None)
    common = {"seed": seed, "token_budget": token_budget, "max_members": max_members}
    if kind == "protein":
        if column is not None:
            raise ArgumentError(
                f"{path}: {{column}} applies to molecule tables, not to protein families", "column"
            )
        return family_prompt(path, tokenizer, **common)
    if kind == "smiles":
        return molecule_set_prompt(path, tokenizer, column=column, randomize=randomize, **common)
    raise InputError(f"{path}: in-context generation needs a protein or SMILES model, not a {kind} model")
