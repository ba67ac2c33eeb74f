"""Protein corpora and datasets: single sequences (causal LM, fill-in-the-middle) and in-context
family packs. Reading is in `biolm.io.proteins`, example formatting in `packing`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from biolm.data.cache import RaggedStore, RaggedView, StoreWriter, cached_store
from biolm.data.corpora import BUILTIN_PROTEOME
from biolm.data.packing import check_seq_len, fim_format, next_token_example, pack_members, sample_spans
from biolm.errors import InputError
from biolm.io.proteins import family_files, iter_corpus
from biolm.tokenizers import ProteinTokenizer, TokenizationError
from biolm.tokenizers.base import BOS_ID, EOS_ID, NUM_SPECIAL


@dataclass
class FamilyIds:
    """The tokenised members of one family, split into training and validation members.

    `train` and `val` index like lists of [L] uint8 residue-id arrays (the protein vocabulary is far
    below 256) but are views of the corpus's `RaggedStore`: nothing is copied until a member is read.
    """

    name: str
    train: RaggedView
    val: RaggedView


class ProteinCorpus:
    """Families of tokenised proteins with a held-out validation share of each family.

    The corpus is read once, record by record, into a flat store of residue ids (see
    `biolm.data.cache`): in memory for a small corpus, in an on-disk cache entry (memory-mapped, reused
    by later runs while the files are unchanged) for one of 32 MB or more. Resident memory is then that
    of the offsets and the split (16 bytes a protein), not of the sequences.

    Which members are held out depends only on `seed` and the family's size, so a run and its resume
    (or two runs with the same seed) validate on the same proteins.

    Args:
        path: a FASTA/A3M/Stockholm file or a directory of family files; None: the built-in proteome.
        tokenizer: checks every residue; errors name the file and record.
        val_fraction: share of each family's members held out, in (0, 0.5].
        seed: seeds the split.
    """

    def __init__(
        self, path: str | os.PathLike | None, tokenizer: ProteinTokenizer, val_fraction: float, seed: int
    ) -> None:
        if not 0.0 < val_fraction <= 0.5:
            raise InputError(f"data.val_fraction must be in (0, 0.5], got {val_fraction}")
        self.builtin = path is None
        self.path = BUILTIN_PROTEOME if path is None else Path(path)
        self.store = tokenized_corpus(self.path, tokenizer)
        self.families = [
            self._split(name, start, end, val_fraction, seed)
            for name, start, end in self.store.meta["families"]
        ]
        if not any(f.val for f in self.families) or not any(f.train for f in self.families):
            raise InputError(f"{self.path}: too few sequences to split into training and validation")

    def _split(self, name: str, start: int, end: int, val_fraction: float, seed: int) -> FamilyIds:
        n = end - start
        n_val = int(round(n * val_fraction))
        # A fixed-seed permutation per family (keyed by its name) decides who is held out.
        held = np.zeros(n, dtype=bool)
        held[np.random.default_rng([seed, *name.encode()]).permutation(n)[:n_val]] = True
        return FamilyIds(
            name,
            RaggedView(self.store, start + np.flatnonzero(~held)),
            RaggedView(self.store, start + np.flatnonzero(held)),
        )

    def sequences(self, split: str) -> RaggedView:
        """Every member of `split` ("train" or "val") of every family, in corpus order."""
        return RaggedView.concat([getattr(f, split) for f in self.families])

    def describe(self) -> str:
        train, n_val = self.sequences("train"), len(self.sequences("val"))
        residues = int(train.lengths().sum())
        where = f"built-in proteome {self.path}" if self.builtin else str(self.path)
        return (
            f"data: {where} ({len(self.families)} famil{'y' if len(self.families) == 1 else 'ies'}; "
            f"{len(train):,} training proteins, {residues:,} residues; {n_val:,} validation proteins)"
        )


def tokenized_corpus(path: Path, tokenizer: ProteinTokenizer) -> RaggedStore:
    """Every protein of a file or directory as uint8 residue ids, read once (streamed) and cached.

    `meta["families"]` lists [name, first record, end record] of each family, in corpus order.

    Raises:
        InputError: as `biolm.io.proteins.iter_corpus`, or a residue the tokenizer cannot read
            (naming the file, record and position).
    """
    if tokenizer.vocab_size > 256:  # pragma: no cover - the protein vocabulary has 31 tokens + sentinels
        raise ValueError("residue ids are stored as uint8")
    files = family_files(path)

    def build(writer: StoreWriter) -> tuple[dict, dict]:
        families: list[list] = []
        for name, file, record in iter_corpus(path):
            if not families or families[-1][0] != name or families[-1][3] != str(file):
                families.append([name, len(writer), len(writer), str(file)])
            try:
                ids = tokenizer.encode(record.sequence, record=record.name)
            except TokenizationError as err:
                # The tokenizer's own hint names its Python argument; a run is configured by data.unknown.
                raise InputError(
                    f"{file}: {err.reason} (after removing gaps); set data.unknown=replace to read it as X"
                ) from None
            writer.append(ids.astype(np.uint8))
            families[-1][2] = len(writer)
        return {"families": [f[:3] for f in families]}, {}

    # What the ids depend on: the residue tokens and the unknown policy (not the FIM sentinels, which
    # come after them and are never produced by encode).
    depends_on = {
        "tokens": tokenizer.tokens[: NUM_SPECIAL + len(tokenizer.ALPHABET)],
        "unknown": tokenizer.unknown,
    }
    return cached_store("protein", path, files, depends_on, build, describe="the proteins")


@dataclass
class FimOptions:
    """Fill-in-the-middle: with probability `rate`, a sequence is formatted with 1..`max_spans` spans."""

    rate: float
    max_spans: int
    sentinels: list[int]


class SequenceExamples(Dataset):
    """One protein per example: `<bos> residues <eos>`, or its FIM form, cut to `seq_len` inputs.

    Training example i of epoch e depends only on (seed, e, i): a uniformly drawn protein and, if it is
    longer than the window, a random crop (the `<bos>`/`<eos>` are kept only when the crop reaches the
    protein's start/end, so the model learns where proteins begin and end). Validation examples are
    each validation protein once, cropped at its start, with a fixed FIM draw.

    Args:
        sequences: [L_j] residue ids.
        seq_len: maximum example length S.
        num_examples: examples per epoch (training); None: one per sequence (validation).
        seed: seeds drawing, cropping and FIM.
        fim: None for plain causal LM.
    """

    def __init__(
        self,
        sequences: list[np.ndarray],
        seq_len: int,
        num_examples: int | None,
        seed: int,
        fim: FimOptions | None = None,
    ) -> None:
        check_seq_len(seq_len)
        self.sequences, self.seq_len, self.seed, self.fim = sequences, seq_len, seed, fim
        self.train = num_examples is not None
        self.num_examples = num_examples if self.train else len(sequences)
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_examples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            residues = self.sequences[int(rng.integers(len(self.sequences)))]
        else:
            rng = np.random.default_rng([self.seed, 1 << 31, index])
            residues = self.sequences[index]
        tokens = np.concatenate([[BOS_ID], residues, [EOS_ID]]).astype(np.int64)
        if self.fim is not None and rng.random() < self.fim.rate:
            # Crop first so that the sentinels (two per span) still fit the window.
            keep = max(1, self.seq_len - 1 - 2 * self.fim.max_spans)
            body = self._crop(tokens, keep + 1, rng)
            inner = body[int(body[0] == BOS_ID) : len(body) - int(body[-1] == EOS_ID)]
            spans = sample_spans(len(inner), self.fim.max_spans, rng)
            tokens = np.concatenate([[BOS_ID], fim_format(inner, spans, self.fim.sentinels), [EOS_ID]])
        else:
            tokens = self._crop(tokens, self.seq_len + 1, rng)
        return next_token_example(tokens)

    def _crop(self, tokens: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
        if len(tokens) <= length:
            return tokens
        start = int(rng.integers(0, len(tokens) - length + 1)) if self.train else 0
        return tokens[start : start + length]


class FamilyPacks(Dataset):
    """In-context examples: members of one family, shuffled and packed with `<sep>` up to `seq_len`
    tokens (see `packing.pack_members`), with `position_ids` restarting for each member.

    Training example i of epoch e is a uniformly drawn family (families with at least one member) and a
    random member order, from (seed, e, i). Validation packs cycle through the families' validation
    members with fixed orders; with `context`, each validation pack opens with `loss_after_members`
    members of the same family's training split, so that the scored members are held-out proteins
    seen in the context of their (training) relatives.

    Args:
        families: [L] residue-id arrays of each family's members (of one split).
        seq_len: token budget S of a pack.
        num_examples: examples per epoch (training), or the number of validation packs.
        loss_after_members: no loss on the first k members of a pack.
        train: draw anew each epoch (True) or fixed packs (False).
        context: for validation: each family's training members, in the order of `families`.
    """

    def __init__(
        self,
        families: list[list[np.ndarray]],
        seq_len: int,
        num_examples: int,
        seed: int,
        loss_after_members: int = 0,
        train: bool = True,
        context: list[list[np.ndarray]] | None = None,
    ) -> None:
        check_seq_len(seq_len, least=3)  # <bos>, a residue, <eos>
        context = context if context is not None else [[] for _ in families]
        pairs = [(f, c) for f, c in zip(families, context, strict=True) if f]
        if not pairs:
            raise InputError("in-context packing: no family has any member in this split")
        self.families, self.context = [f for f, _ in pairs], [c for _, c in pairs]
        self.seq_len, self.num_examples, self.seed = seq_len, num_examples, seed
        self.loss_after_members, self.train = loss_after_members, train
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_examples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            family = self.families[int(rng.integers(len(self.families)))]
            context = []
        else:
            rng = np.random.default_rng([self.seed, 1 << 31, index])
            family = self.families[index % len(self.families)]
            pool = self.context[index % len(self.families)]
            context = [pool[j] for j in rng.permutation(len(pool))[: self.loss_after_members]]
        members = [m.astype(np.int64) for m in context + [family[j] for j in rng.permutation(len(family))]]
        example, _ = pack_members(members, self.seq_len, self.loss_after_members)
        return example
