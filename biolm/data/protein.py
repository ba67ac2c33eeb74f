"""Protein corpora and datasets: single sequences (causal LM, fill-in-the-middle) and in-context
family packs. Reading is in `protein_io`, example formatting in `packing`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from biolm.data.fasta import BUILTIN_DIR
from biolm.data.packing import fim_format, next_token_example, pack_members, sample_spans
from biolm.data.protein_io import Family, read_families
from biolm.errors import InputError
from biolm.tokenizers import ProteinTokenizer, TokenizationError
from biolm.tokenizers.base import BOS_ID, EOS_ID

BUILTIN_PROTEOME = BUILTIN_DIR / "HG003687_proteome.faa.gz"


@dataclass
class FamilyIds:
    """The tokenised members of one family, split into training and validation members.

    Ids are stored as uint8 (the protein vocabulary is far below 256), a quarter of the memory of
    int64 for corpora of millions of residues.
    """

    name: str
    train: list[np.ndarray]
    val: list[np.ndarray]


class ProteinCorpus:
    """Families of tokenised proteins with a held-out validation share of each family.

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
        self.families = [self._split(f, tokenizer, val_fraction, seed) for f in read_families(self.path)]
        if not any(f.val for f in self.families) or not any(f.train for f in self.families):
            raise InputError(f"{self.path}: too few sequences to split into training and validation")

    @staticmethod
    def _split(family: Family, tokenizer: ProteinTokenizer, val_fraction: float, seed: int) -> FamilyIds:
        ids = []
        for record in family.records:
            try:
                ids.append(tokenizer.encode(record.sequence, record=record.name).astype(np.uint8))
            except TokenizationError as err:
                raise InputError(
                    f"{family.source}: {err} (after removing gaps; set data.unknown=replace to read it as X)"
                ) from None
        n_val = int(round(len(ids) * val_fraction))
        # A fixed-seed permutation per family (keyed by its name) decides who is held out.
        key = [seed, *family.name.encode()]
        held = set(np.random.default_rng(key).permutation(len(ids))[:n_val].tolist())
        return FamilyIds(
            family.name,
            [a for i, a in enumerate(ids) if i not in held],
            [a for i, a in enumerate(ids) if i in held],
        )

    def sequences(self, split: str) -> list[np.ndarray]:
        """Every member of `split` ("train" or "val") of every family, in corpus order."""
        return [a for f in self.families for a in getattr(f, split)]

    def describe(self) -> str:
        n_train, n_val = len(self.sequences("train")), len(self.sequences("val"))
        residues = sum(len(a) for a in self.sequences("train"))
        where = f"built-in proteome {self.path}" if self.builtin else str(self.path)
        return (
            f"data: {where} ({len(self.families)} famil{'y' if len(self.families) == 1 else 'ies'}; "
            f"{n_train:,} training proteins, {residues:,} residues; {n_val:,} validation proteins)"
        )


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
