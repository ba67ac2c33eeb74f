"""Molecule-set packing for in-context training: molecules of one set share an example.

A packed example holds k molecules of one set (e.g. the actives of one target), laid out by
`biolm.data.layout` (the one in-context layout):

    input_ids     <bos> m1 .. <sep> m2 .. <sep> .. mk .. <eos>
    position_ids  0     1 ..  0     1 ..  0     .. 1  .. n_k+1
    labels        the next token at each position, IGNORE_INDEX at the last

Each molecule starts at its start token (`<bos>` or `<sep>`) with position 0, so the model sees every
molecule at the positions it would have alone and the position of a molecule says nothing about how
many came before it. A model that takes `cu_seqlens` can recover the boundaries from the restarts.
k is as large as the token budget (`data.seq_len`) allows; a pack of k molecules costs
1 + sum(n_i + 1) tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from biolm.data.chem import MoleculeSet
from biolm.data.chem_dataset import IGNORE_INDEX, MoleculeEncoder, example_seed
from biolm.data.layout import DEFAULT_LAYOUT, Layout


def packed_example(molecules: Sequence[np.ndarray], layout: Layout = DEFAULT_LAYOUT) -> dict:
    """`input_ids`, `labels`, `position_ids` [L] for molecules packed as in the module docstring."""
    stream = layout.closed(molecules)
    labels = np.concatenate([stream.ids[1:], [IGNORE_INDEX]]).astype(np.int64)
    return {
        "input_ids": torch.from_numpy(stream.ids),
        "labels": torch.from_numpy(labels),
        "position_ids": torch.from_numpy(stream.positions),
    }


class PackedSets(Dataset):
    """Packed examples from molecule sets; every example comes from one set.

    Training: each epoch every set is shuffled (seeded by (seed, epoch, set)), its molecules written as
    randomized SMILES (seeded by (seed, epoch, set, molecule)) and packed greedily, then the packs of
    all sets are shuffled together. The number of examples is that of epoch 0 for every epoch, so that
    the trainer's epoch length is fixed: when another epoch's shuffle packs into a few more examples,
    its last ones are left out of that epoch; into fewer, its first ones are repeated.
    Validation: file order, canonical SMILES, packed once.

    Args:
        sets: the molecule sets (from `biolm.data.chem`, already checked by the encoder).
        encoder: tokenizes and randomizes; its `max_tokens` is the token budget of an example.
    """

    def __init__(
        self,
        sets: list[MoleculeSet],
        encoder: MoleculeEncoder,
        seed: int,
        train: bool,
        randomize: bool = True,
    ) -> None:
        self.sets = [s for s in sets if len(s)]
        self.encoder, self.seed, self.train = encoder, seed, train
        self.randomize = randomize and train
        self._epoch = 0
        self._packs: tuple[int, list[list[np.ndarray]]] | None = None
        self._length = len(self.packs())

    @property
    def epoch(self) -> int:
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch = value  # packs are rebuilt lazily, in whichever process reads them

    def __len__(self) -> int:
        return self._length

    def packs(self) -> list[list[np.ndarray]]:
        """This epoch's packs: each a list of molecules' token ids (no specials)."""
        epoch = self._epoch if self.train else 0
        if self._packs is not None and self._packs[0] == epoch:
            return self._packs[1]
        packs: list[list[np.ndarray]] = []
        for set_index, molecules in enumerate(self.sets):
            order = np.arange(len(molecules))
            if self.train:
                order = np.random.default_rng([self.seed, epoch, set_index]).permutation(len(molecules))
            encoded = []
            for m in order:
                seed = example_seed(self.seed, epoch, set_index, int(m)) if self.randomize else None
                encoded.append(self.encoder.training_ids(molecules.smiles[m], seed))
            for pack in DEFAULT_LAYOUT.runs([len(e) for e in encoded], self.encoder.max_tokens):
                packs.append([encoded[i] for i in pack])
        if self.train:
            shuffle = np.random.default_rng([self.seed, epoch]).permutation(len(packs))
            packs = [packs[i] for i in shuffle]
        self._packs = (epoch, packs)
        return packs

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        packs = self.packs()
        return packed_example(packs[index % len(packs)])
