"""Small molecules as SMILES: checked and canonical with RDKit, packed in sets of molecules; samples
kept when they are valid, distinct molecules."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from biolm.domains.base import IN_CONTEXT, ContextMembers, Domain, DomainData, novel_samples
from biolm.errors import ArgumentError, InputError
from biolm.io.outputs import SMILES
from biolm.io.records import SEQUENCE_COLUMN_NAMES, RecordRules, canonical_molecule
from biolm.io.smiles import SMILES_COLUMN_NAMES
from biolm.tokenizers.base import Tokenizer
from biolm.tokenizers.smiles import SmilesTokenizer


def training_data(cfg: Any, like: Tokenizer | None = None) -> DomainData:
    """SMILES molecules or packed molecule sets (`biolm.data.chem_datamodule`), tokenized as `like`
    (the starting model's tokenizer of an `init_from` run: a format-1 vocabulary stays format 1)."""
    from biolm.data.chem_datamodule import build_chem_data

    unknown = "replace" if cfg.data.unknown == "replace" else "error"
    if isinstance(like, SmilesTokenizer):
        tokenizer = SmilesTokenizer(
            like.vocab,
            unknown=unknown,
            bracket_parts=like.bracket_parts,
            segmentation=like.segmentation,
            aliases=like.aliases,
        )
    else:
        tokenizer = SmilesTokenizer(unknown=unknown)
    datamodule = build_chem_data(cfg.data, tokenizer, cfg.seed)
    return DomainData(tokenizer, datamodule, f"data: {datamodule.description}")


def clean_molecules(
    smiles: Iterable[str], reference: Iterable[str] | None = None, *, drop_known: bool = False
) -> tuple[list[str], dict[str, int]]:
    """Valid, canonical, de-duplicated molecules, and how many passed each stage:
    {"generated", "valid", "unique", "novel"} ("novel" only with a reference), each of the stage
    before it.

    A sample is valid if RDKit parses it into at least one atom. Molecules are compared by their
    canonical (isomeric) SMILES, the form training uses (`biolm.io.smiles.canonical_smiles`), so two
    spellings of one molecule are one molecule.

    Args:
        smiles: the generated SMILES, in sampling order.
        reference: known molecules (e.g. the context set); canonicalized here, invalid ones ignored.
            With it, "novel" counts unique molecules not in it.
        drop_known: also leave out the molecules found in `reference`.

    Returns:
        (canonical SMILES kept, in order of first appearance; the counts).
    """
    from biolm.io.smiles import canonical_smiles

    generated, valid = 0, 0
    unique: dict[str, None] = {}
    for text in smiles:
        generated += 1
        canonical = canonical_smiles(text) if text and text.strip() else None
        if canonical is None:
            continue
        valid += 1
        unique.setdefault(canonical, None)
    counts = {"generated": generated, "valid": valid, "unique": len(unique)}
    known = None
    if reference is not None:
        known = {c for c in (canonical_smiles(r) for r in reference if r) if c is not None}
    return novel_samples(counts, list(unique), list(unique), known, drop_known), counts


def read_molecule_set(
    path: str | os.PathLike,
    tokenizer: Tokenizer,
    *,
    seed: int = 0,
    token_budget: int,
    column: str | None = None,
    randomize: bool = False,
    unknown: str | None = None,
) -> ContextMembers:
    """The molecules of a set (e.g. actives of a target) as context members.

    Molecules are read as training reads them (`biolm.data.chem.read_molecules`): RDKit checks every
    SMILES and keeps its canonical form; invalid ones are skipped with one warning naming the file and
    lines. Duplicates (the same canonical SMILES), molecules with tokens outside the model's vocabulary
    (under `unknown="skip"`, the default) and molecules that alone exceed the budget are left out and
    counted. The rest are shuffled with `seed`.

    Args:
        path: .smi/.smiles/.txt (SMILES, then optionally a name) or a .csv/.tsv table, optionally .gz.
        tokenizer: the model's SMILES tokenizer.
        seed: seeds the order (and the randomized SMILES).
        token_budget: the most prompt tokens.
        column: the SMILES column of a table (exact name); auto-detected if None.
        randomize: write each molecule as a seeded randomized SMILES, as training with
            `data.randomize_smiles=true` does; False writes canonical SMILES, the form of the
            validation packs, which every such model has also seen.
        unknown: "skip" (None), "error" or "replace" (read tokens outside the vocabulary as `<unk>`).

    Raises:
        InputError: missing, empty or unreadable file, unknown extension, missing column, no valid
            molecule, no molecule short enough for the budget.
    """
    from biolm.data.chem import read_molecules
    from biolm.data.chem_dataset import MoleculeEncoder, example_seed
    from biolm.io.smiles import SMI_SUFFIXES, warn_skipped
    from biolm.io.tables import TABLE_SUFFIXES

    path = Path(path)
    unknown = unknown or "skip"
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
    ids = [
        (encoder.training_ids(usable.smiles[i], example_seed(seed, 0, i)) if randomize else canonical_ids[i])
        for i in order
    ]
    dropped = {
        "invalid": n_invalid,
        "duplicate": n_duplicate,
        "unknown tokens": n_unknown,
        "longer than budget": len(too_long),
    }
    return ContextMembers(
        ids=[m.astype(np.int64) for m in ids],
        texts=[tokenizer.decode(m) for m in ids],
        reference=list(usable.smiles),
        total=molecules.total,
        dropped={why: n for why, n in dropped.items() if n},
    )


CHEM = Domain(
    name="chem",
    title="SMILES",
    tokenizer_class=SmilesTokenizer,
    training_data=training_data,
    # A SMILES model looks for SMILES columns first, then the generic sequence columns.
    records=RecordRules(
        column_names=SMILES_COLUMN_NAMES + SEQUENCE_COLUMN_NAMES, every_record=canonical_molecule
    ),
    aliases=("smiles", "molecules"),
    objectives=frozenset({"clm", "mlm"}),
    capabilities=frozenset({IN_CONTEXT}),
    clean_samples=clean_molecules,
    read_context=read_molecule_set,
    output=SMILES,
    sample_noun="molecules",
    member_noun="molecules",
)
