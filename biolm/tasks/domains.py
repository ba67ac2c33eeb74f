"""Per-domain data builders for the training runner: tokenizer, DataModule, a one-line description and
(DNA only) the Markov baseline. A new domain is one more builder in `DOMAINS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import lightning as L
import numpy as np

from biolm.configs.schema import TrainConfig
from biolm.data.packing import IGNORE_INDEX
from biolm.tasks.ranks import announce
from biolm.tokenizers import Tokenizer


@dataclass
class DomainData:
    """What the runner needs from a domain.

    Attributes:
        tokenizer: saved with the model.
        datamodule: training and validation loaders.
        description: printed before training (what data, how much).
        baseline: None, or a function run after training that returns (Markov order, summed NLL,
            number of targets) on the same validation targets as the model.
        masking: keyword arguments of `MaskedLMTask` for this domain (which ids replace a masked
            token, which are never targets).
    """

    tokenizer: Tokenizer
    datamodule: L.LightningDataModule
    description: str
    baseline: Callable[[], tuple[int, float, int]] | None = None
    masking: dict = field(default_factory=dict)


def dna_data(cfg: TrainConfig, like: Tokenizer | None = None) -> DomainData:
    """Genome windows; the order-k Markov model is fitted while every base is checked. (The DNA
    tokenizer has one format, so `like` changes nothing.)"""
    from biolm.data.datamodule import GenomeDataModule
    from biolm.data.genome import GenomeSource
    from biolm.tokenizers import DNATokenizer

    tokenizer = DNATokenizer(unknown=cfg.data.unknown)
    source = GenomeSource(cfg.data.path, tokenizer, cfg.data.val_fraction)
    description = (
        f"data: {'built-in genome ' if source.builtin else ''}{source.path} "
        f"({len(source.train_regions)} record(s); {source.train_length:,} bp training, "
        f"{sum(len(r) for r in source.val_regions):,} bp validation)"
    )
    announce(description)  # every rank reads the genome, one says so, before the scan (it can take a while)
    markov = source.scan(cfg.baseline.markov_order)  # also checks every base before training starts
    datamodule = GenomeDataModule(source, cfg.data, cfg.seed)

    def baseline() -> tuple[int, float, int]:
        nll, targets = source.markov_nll(markov, datamodule.val_set.windows)
        return markov.order, nll, targets

    # N says nothing about the genome: never a target (as in the causal LM) nor a random replacement.
    bases = [tokenizer.token_to_id(b) for b in "ACGT"]
    masking = {"random_ids": bases, "exclude_ids": [tokenizer.token_to_id("N")]}
    return DomainData(tokenizer, datamodule, "", baseline, masking)


def protein_data(cfg: TrainConfig, like: Tokenizer | None = None) -> DomainData:
    """Single proteins (clm, fim) or in-context family packs, from a file, a directory or the built-in
    proteome. (The protein tokenizer has one format, so `like` changes nothing.)"""
    from biolm.data.datamodule import DatasetModule
    from biolm.data.packing import pad_batch
    from biolm.data.protein import FamilyPacks, FimOptions, ProteinCorpus, SequenceExamples
    from biolm.tokenizers import ProteinTokenizer

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


def chem_data(cfg: TrainConfig, like: Tokenizer | None = None) -> DomainData:
    """SMILES molecules or packed molecule sets (`biolm.data.chem_datamodule`), tokenized as `like`
    (the starting model's tokenizer of an `init_from` run: a format-1 vocabulary stays format 1)."""
    from biolm.data.chem_datamodule import build_chem_data
    from biolm.tokenizers import SmilesTokenizer

    unknown = "replace" if cfg.data.unknown == "replace" else "error"
    if isinstance(like, SmilesTokenizer):
        tokenizer = SmilesTokenizer(like.vocab, unknown=unknown, bracket_parts=like.bracket_parts)
    else:
        tokenizer = SmilesTokenizer(unknown=unknown)
    datamodule = build_chem_data(cfg.data, tokenizer, cfg.seed)
    return DomainData(tokenizer, datamodule, f"data: {datamodule.description}")


DOMAINS: dict[str, Callable[..., DomainData]] = {
    "dna": dna_data,
    "protein": protein_data,
    "chem": chem_data,
}


def build_data(domain: str, cfg: TrainConfig, like: Tokenizer | None = None) -> DomainData:
    """The `DomainData` of `domain` (a key of `DOMAINS`), tokenized like `like` where the domain's
    tokenizer has several formats (the starting model's tokenizer of an `init_from` run)."""
    return DOMAINS[domain](cfg, like=like)


def count_targets(datamodule: L.LightningDataModule) -> int:
    """Validation targets (labels that are not IGNORE_INDEX), for tasks that do not count them."""
    return sum(int((batch["labels"] != IGNORE_INDEX).sum()) for batch in datamodule.val_dataloader())
