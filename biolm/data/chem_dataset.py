"""Molecules as token ids: vocabulary checks, randomized SMILES, one-molecule examples and padding.

An example is a dict of int64 tensors of one length L (at most `seq_len`):
    input_ids [L]      `<bos> t1 .. tn <eos>`
    labels [L]         `t1 .. tn <eos> IGNORE`: the next token at each position, so that a causal task
                       uses them without shifting (as genome windows do) and a masked task can
                       rebuild its own targets from `input_ids`.
    position_ids [L]   only for packed molecule sets (see `biolm.data.molsets`).
`biolm.data.packing.pad_batch` stacks examples into [B, S] tensors, S the longest example of the batch.
"""

from __future__ import annotations

import array
import warnings
from collections import Counter

import numpy as np
import torch
from torch.utils.data import Dataset

from biolm.data.chem import MoleculeSet
from biolm.data.packing import IGNORE_INDEX
from biolm.errors import InputError
from biolm.io.smiles import ChemDataWarning, check_smiles_size, warn_skipped
from biolm.tokenizers import SmilesTokenizer, TokenizationError, tokenize_smiles

UNKNOWN_POLICIES = ("error", "skip", "replace")


def randomized_smiles(smiles: str, seed: int) -> str:
    """A random valid SMILES of the same molecule (RDKit's random atom order and branch choice, the
    `doRandom=True, canonical=False` writer), fixed by `seed`; stereochemistry is kept.

    `MolToRandomSmilesVect` takes its own seed, unlike `MolToSmiles(doRandom=True)` which draws from a
    process-wide generator; a per-call seed is what makes an example a function of its index.

    Raises:
        InputError: `smiles` is too large for RDKit (`biolm.io.smiles.check_smiles_size`; the readers
            of molecule sets leave such molecules out, so only a caller's own SMILES can be).
    """
    check_smiles_size(smiles, "randomized SMILES")
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    return Chem.MolToRandomSmilesVect(mol, 1, randomSeed=seed)[0]


def example_seed(seed: int, epoch: int, *index: int) -> int:
    """A seed for RDKit (1 .. 2**31 - 1; 0 would mean unseeded) from (seed, epoch, index...)."""
    # The trailing 7 keeps this stream apart from the permutations drawn from (seed, epoch, ...).
    return int(np.random.default_rng([seed, epoch, *index, 7]).integers(1, 2**31 - 1))


class MoleculeEncoder:
    """Encodes SMILES with a `SmilesTokenizer` under a policy for tokens outside its vocabulary.

    Args:
        tokenizer: the SMILES tokenizer whose ids the model uses.
        unknown: "error" (stop at the first molecule with such a token), "skip" (leave those molecules
            out, with a warning per file) or "replace" (read the token as `<unk>`, with a warning).
        max_tokens: longest example, `<bos>` and `<eos>` included (data.seq_len).
    """

    def __init__(self, tokenizer: SmilesTokenizer, unknown: str, max_tokens: int) -> None:
        if unknown not in UNKNOWN_POLICIES:
            raise InputError(f"data.unknown must be one of {', '.join(UNKNOWN_POLICIES)}; got {unknown!r}")
        if max_tokens < 3:
            raise InputError(f"data.seq_len must be at least 3 for a molecule, got {max_tokens}")
        if unknown == "replace" and tokenizer.unknown != "replace":
            # Same ids and the same format.
            parts = tokenizer.bracket_parts
            tokenizer = SmilesTokenizer(tokenizer.vocab, unknown="replace", bracket_parts=parts)
        self.tokenizer, self.unknown, self.max_tokens = tokenizer, unknown, max_tokens
        self._known = set(tokenizer.tokens)

    def encode(self, smiles: str) -> np.ndarray:
        """Token ids `[n]` of `smiles`, without `<bos>`/`<eos>`.

        Raises:
            TokenizationError: text that is not SMILES tokens, or (unless "replace") unknown tokens.
        """
        return self.tokenizer.encode(smiles)

    def fits(self, ids: np.ndarray) -> bool:
        return len(ids) + 2 <= self.max_tokens

    def check(self, molecules: MoleculeSet) -> MoleculeSet:
        """The molecules that can be trained on, with one warning per reason for those left out.

        Raises:
            InputError: under "error", the first molecule with a token outside the vocabulary, naming
                the file, line and token.
        """
        keep = array.array("q")  # 8 bytes a molecule, for corpora of millions
        unknown: list[tuple[int, str]] = []
        untokenizable: list[tuple[int, str]] = []
        too_long: list[tuple[int, str]] = []
        unknown_tokens: Counter[str] = Counter()
        for i, (smiles, line) in enumerate(zip(molecules.smiles, molecules.lines, strict=True)):
            try:
                tokens = tokenize_smiles(smiles)
            except TokenizationError as err:
                untokenizable.append((line, f"{smiles} ({err})"))
                continue
            missing = [t for t in tokens if t not in self._known]
            if missing:
                if self.unknown == "error":
                    raise InputError(
                        f"{molecules.path}: line {line}: SMILES token {missing[0]!r} of {smiles!r} is not in "
                        "the tokenizer's vocabulary; set data.unknown=skip to leave such molecules out or "
                        "data.unknown=replace to read them as <unk>"
                    )
                unknown_tokens.update(missing)
                if self.unknown == "skip":
                    unknown.append((line, smiles))
                    continue
            if len(tokens) + 2 > self.max_tokens:
                too_long.append((line, smiles))
                continue
            keep.append(i)
        if unknown_tokens:
            counts = ", ".join(f"{t} x{n}" for t, n in unknown_tokens.most_common(10))
            if self.unknown == "skip":
                why = f"tokens outside the vocabulary: {counts}"
                warn_skipped(molecules.path, why, unknown, molecules.total)
            else:
                warnings.warn(
                    f"{molecules.path}: tokens outside the vocabulary read as <unk>: {counts}",
                    ChemDataWarning,
                    stacklevel=2,
                )
        if untokenizable:
            warn_skipped(molecules.path, "not tokenizable", untokenizable, molecules.total)
        if too_long:
            warn_skipped(
                molecules.path, f"over data.seq_len={self.max_tokens} tokens", too_long, molecules.total
            )
        return molecules.subset(np.frombuffer(keep, dtype=np.int64) if keep else [])

    def training_ids(self, smiles: str, seed: int | None) -> np.ndarray:
        """Ids of a randomized SMILES of the molecule (canonical when `seed` is None).

        A random form can come out longer than `max_tokens`, or spell a bond (RDKit's dative `<-`) the
        tokenizer cannot read, where the canonical form was fine; that draw uses the canonical form.
        """
        if seed is not None:
            try:
                ids = self.encode(randomized_smiles(smiles, seed))
                if self.fits(ids):
                    return ids
            except TokenizationError:
                pass
        return self.encode(smiles)


def molecule_example(ids: np.ndarray, bos_id: int, eos_id: int) -> dict[str, torch.Tensor]:
    """`input_ids` [n + 2] = `<bos> ids <eos>`; `labels` [n + 2] = the next token, IGNORE at the end."""
    full = np.concatenate([[bos_id], ids, [eos_id]]).astype(np.int64)
    labels = np.concatenate([full[1:], [IGNORE_INDEX]]).astype(np.int64)
    return {"input_ids": torch.from_numpy(full), "labels": torch.from_numpy(labels)}


class MoleculeDataset(Dataset):
    """One molecule per example (see the module docstring for the fields).

    Training (`train=True`): the order is a new permutation each epoch and each molecule is written as
    a randomized SMILES (if `randomize`); both depend only on (seed, epoch, molecule), so a run, a
    resumed run and every data-parallel rank see the same data. Validation: file order, canonical SMILES.
    Set `epoch` before each epoch (biolm's `SetEpoch` callback does).
    """

    def __init__(
        self, smiles: list[str], encoder: MoleculeEncoder, seed: int, train: bool, randomize: bool = True
    ) -> None:
        self.smiles, self.encoder, self.seed = smiles, encoder, seed
        self.train, self.randomize = train, randomize and train
        self.epoch = 0
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.smiles)

    def molecule(self, index: int) -> int:
        """Which molecule example `index` of the current epoch is."""
        if not self.train:
            return index
        if self._order is None or self._order[0] != self.epoch:
            self._order = (self.epoch, np.random.default_rng([self.seed, self.epoch]).permutation(len(self)))
        return int(self._order[1][index])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        mol = self.molecule(index)
        seed = example_seed(self.seed, self.epoch, mol) if self.randomize else None
        tok = self.encoder.tokenizer
        return molecule_example(self.encoder.training_ids(self.smiles[mol], seed), tok.bos_id, tok.eos_id)
