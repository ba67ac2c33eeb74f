"""DNA: genome windows of ACGTN, a double strand (reverse complement), samples that run to their length
limit (a genome window has no end token)."""

from __future__ import annotations

from typing import Any

from biolm.domains.base import REVERSE_COMPLEMENT, Domain, DomainData, keep_samples
from biolm.tokenizers.base import Tokenizer
from biolm.tokenizers.dna import DNATokenizer


def training_data(cfg: Any, like: Tokenizer | None = None) -> DomainData:
    """Genome windows; the order-k Markov model is fitted while every base is checked. (The DNA
    tokenizer has one format, so `like` changes nothing.)"""
    from biolm.data.datamodule import GenomeDataModule
    from biolm.data.genome import GenomeSource
    from biolm.data.ranks import announce

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


DNA = Domain(
    name="dna",
    title="DNA",
    tokenizer_class=DNATokenizer,
    training_data=training_data,
    objectives=frozenset({"clm", "mlm"}),
    capabilities=frozenset({REVERSE_COMPLEMENT}),
    options=frozenset({"rc_augment"}),
    clean_samples=keep_samples,
    ends_samples=False,
    max_new_tokens=200,
    perplexity_unit="nucleotide",
)
