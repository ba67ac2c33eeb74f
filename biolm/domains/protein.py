"""Proteins: single sequences, fill-in-the-middle, in-context families; homolog-conditioned scoring."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from biolm.domains.base import (
    HOMOLOG_CONTEXT,
    IN_CONTEXT,
    INFILL,
    ContextMembers,
    Domain,
    DomainData,
    novel_samples,
)
from biolm.errors import InputError
from biolm.io.records import RecordRules, cleaned_protein
from biolm.tokenizers.base import TokenizationError, Tokenizer
from biolm.tokenizers.protein import ProteinTokenizer


def training_data(cfg: Any, like: Tokenizer | None = None) -> DomainData:
    """Single proteins (clm, fim) or in-context family packs, from a file, a directory or the built-in
    proteome. (The protein tokenizer has one format, so `like` changes nothing.)"""
    from biolm.data.datamodule import DatasetModule
    from biolm.data.packing import pad_batch
    from biolm.data.protein import FamilyPacks, FimOptions, ProteinCorpus, SequenceExamples

    d, objective = cfg.data, cfg.task.objective
    sentinels = cfg.task.fim_max_spans if objective == "fim" else 0
    tokenizer = ProteinTokenizer(unknown=d.unknown, fim_sentinels=sentinels)
    corpus = ProteinCorpus(d.path, tokenizer, d.val_fraction, cfg.seed)
    if d.packing == "sets":
        train_set = FamilyPacks(
            [f.train for f in corpus.families], d.seq_len, d.windows_per_epoch, cfg.seed, d.loss_after_members
        )
        val_set = FamilyPacks(
            [f.val for f in corpus.families],
            d.seq_len,
            d.max_val_windows or 64,
            cfg.seed,
            d.loss_after_members,
            train=False,
            context=[f.train for f in corpus.families],
        )
    else:
        fim = (
            FimOptions(cfg.task.fim_rate, cfg.task.fim_max_spans, tokenizer.sentinel_ids)
            if objective == "fim"
            else None
        )
        val = corpus.sequences("val")
        if d.max_val_windows is not None and len(val) > d.max_val_windows:
            keep = np.linspace(0, len(val) - 1, d.max_val_windows).round().astype(int)
            val = [val[i] for i in keep]
        train_set = SequenceExamples(corpus.sequences("train"), d.seq_len, d.windows_per_epoch, cfg.seed, fim)
        val_set = SequenceExamples(val, d.seq_len, None, cfg.seed, fim)
    residues = [tokenizer.token_to_id(a) for a in tokenizer.ALPHABET]
    masking = {"random_ids": residues}  # never a <fim_k> sentinel
    return DomainData(
        tokenizer, DatasetModule(train_set, val_set, d, pad_batch), corpus.describe(), masking=masking
    )


def clean_proteins(
    sequences: Iterable[str],
    reference: Iterable[str] | None = None,
    *,
    drop_duplicates: bool = True,
    drop_known: bool = False,
) -> tuple[list[str], dict[str, int]]:
    """Non-empty (and by default distinct) generated proteins, and how many passed each stage:
    {"generated", "non_empty", "unique", "novel"} ("novel" only with a reference), each of the stage
    before it.

    A sample is empty when the model ended the member at once (`<sep>`/`<eos>` as its first token).
    Sequences are compared upper-cased, without whitespace.

    Args:
        sequences: the generated sequences, in sampling order.
        reference: known proteins (e.g. the context family); with it, "novel" counts unique samples not
            in it.
        drop_duplicates: keep only the first copy of a repeated sequence.
        drop_known: also leave out sequences found in `reference`.

    Returns:
        (sequences kept, in sampling order; the counts).
    """
    norm = ["".join(s.split()).upper() for s in sequences]
    non_empty = [s for s in norm if s]
    distinct = list(dict.fromkeys(non_empty))
    counts = {"generated": len(norm), "non_empty": len(non_empty), "unique": len(distinct)}
    kept = distinct if drop_duplicates else non_empty
    known = None if reference is None else {"".join(r.split()).upper() for r in reference}
    return novel_samples(counts, kept, distinct, known, drop_known), counts


def encode_unaligned(tokenizer: Tokenizer, path: Path, name: str, sequence: str) -> np.ndarray:
    """[L] int64 ids of a protein read from an alignment (gaps removed); a residue the tokenizer cannot
    read is a one-line InputError naming the file and the record."""
    try:
        return tokenizer.encode(sequence, record=name).astype(np.int64)
    except TokenizationError as err:
        raise InputError(f"{path}: {err.reason} (after removing gaps)") from None


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


def read_family(
    path: str | os.PathLike,
    tokenizer: Tokenizer,
    *,
    seed: int = 0,
    token_budget: int,
    column: str | None = None,
    randomize: bool = False,
    unknown: str | None = None,
) -> ContextMembers:
    """Homologous proteins of a FASTA/A3M/Stockholm file (gzip fine) as context members.

    Records are read as raw proteins (gaps `-`/`.` removed, A3M/Stockholm inserts upper-cased, a final
    `*` dropped). Empty and duplicate sequences are left out and counted, as are members that alone
    exceed the budget; the rest are shuffled with `seed`. `randomize` and `unknown` are for molecules
    (every residue is checked with the tokenizer, which decides about unknown ones).

    Raises:
        InputError: a missing, empty or malformed file, a residue the tokenizer cannot read (naming the
            record), no usable member, or none short enough for the budget.
    """
    from biolm.data.layout import DEFAULT_LAYOUT
    from biolm.errors import ArgumentError

    path = Path(path)
    if column is not None:
        raise ArgumentError(
            f"{path}: {{column}} applies to molecule tables, not to protein families", "column"
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
        ids.append(encode_unaligned(tokenizer, path, name, seq))
        sequences.append(seq)
    # Shuffle before leaving out the members too long for the budget, so that one seed gives the same
    # order whatever the budget (a larger budget extends the same prompt).
    shuffled = np.random.default_rng(seed).permutation(len(ids))
    order = [i for i in shuffled if DEFAULT_LAYOUT.stream_tokens([len(ids[i])]) <= token_budget]
    n_long = len(ids) - len(order)
    if not order:
        why = f"{n_long} longer than the token budget of {token_budget}" if n_long else "all empty"
        raise InputError(f"{path}: no usable protein for the context ({len(records)} records; {why})")
    dropped = {"empty": n_empty, "duplicate": n_duplicate, "longer than budget": n_long}
    return ContextMembers(
        ids=[ids[i] for i in order],
        texts=[sequences[i] for i in order],
        reference=sequences,
        total=len(records),
        dropped={why: n for why, n in dropped.items() if n},
    )


PROTEIN = Domain(
    name="protein",
    title="protein",
    tokenizer_class=ProteinTokenizer,
    training_data=training_data,
    records=RecordRules(fasta_record=cleaned_protein),
    aliases=("proteins",),
    objectives=frozenset({"clm", "mlm", "fim"}),
    capabilities=frozenset({IN_CONTEXT, INFILL, HOMOLOG_CONTEXT}),
    options=frozenset({"loss_after_members"}),
    clean_samples=clean_proteins,
    read_context=read_family,
    max_new_tokens=1024,
)
