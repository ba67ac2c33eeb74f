"""A toy fourth domain, RNA (ACGU), in one module: the proof that a new alphabet touches one place.

Nothing else in biolm knows about it: `register(RNA)` makes `biolm train rna`, `biolm.embed`,
`biolm.generate` and the scoring functions work for RNA models, and a saved RNA model load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from biolm.domains import Domain, DomainData
from biolm.tokenizers.base import CharTokenizer, Tokenizer

CONFIGS = Path(__file__).parent / "rna_configs"


class RNATokenizer(CharTokenizer):
    """One token per nucleotide: A C G U, and N for any base."""

    kind: ClassVar[str] = "rna"
    ALPHABET: ClassVar[str] = "ACGUN"
    REPLACEMENT: ClassVar[str] = "N"
    ALPHABET_NAME: ClassVar[str] = "RNA alphabet is ACGUN"


def training_data(cfg: Any, like: Tokenizer | None = None) -> DomainData:
    """One RNA per example (`<bos> bases <eos>`, cropped to data.seq_len), from a FASTA file."""
    from biolm.data.datamodule import DatasetModule
    from biolm.data.packing import pad_batch
    from biolm.data.protein import SequenceExamples
    from biolm.io.fasta import read_fasta

    tokenizer = RNATokenizer(unknown=cfg.data.unknown)
    sequences = [tokenizer.encode(r.sequence, record=r.name) for r in read_fasta(cfg.data.path)]
    order = np.random.default_rng(cfg.seed).permutation(len(sequences))
    n_val = max(1, round(cfg.data.val_fraction * len(sequences)))
    val = [sequences[i] for i in order[:n_val]]
    train = [sequences[i] for i in order[n_val:]]
    d = cfg.data
    datamodule = DatasetModule(
        SequenceExamples(train, d.seq_len, d.windows_per_epoch, cfg.seed),
        SequenceExamples(val, d.seq_len, None, cfg.seed),
        d,
        pad_batch,
    )
    return DomainData(tokenizer, datamodule, f"data: {len(train)} training and {len(val)} validation RNAs")


RNA = Domain(
    name="rna",
    title="RNA",
    tokenizer_class=RNATokenizer,
    training_data=training_data,
    max_new_tokens=40,
    perplexity_unit="nucleotide",
    config_dir=CONFIGS,
)
