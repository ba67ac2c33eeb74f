"""The options of every `biolm eval` recipe: one dataclass per recipe, each default documented and
every value checked once, when the options are made.

Plain Python (no numpy, no torch) on purpose: `biolm eval --help` shows these defaults, and the CLI
builds its parser on every command, so importing this module must cost nothing. The CLI passes only
the flags a user gave, so each default is stated here and nowhere else.

A bad value raises an `ArgumentError` template: a Python caller reads `draws must be at least 1`, a
CLI user `--draws must be at least 1`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from biolm.errors import ArgumentError, InputError
from biolm.inference.arguments import check_sampling

# Homolog contexts of zero-shot scoring: the training length of the in-context recipes (a recurrent
# model reads more in constant memory), and the tokens read per forward pass (bounds the memory).
DEFAULT_CONTEXT_TOKENS = 2048
DEFAULT_PREFILL_TOKENS = 4096
SCORES = ("causal", "fim")

# The context sizes k of the in-context gain curve (`biolm.evaluation.incontext.gain_curve`).
DEFAULT_SIZES: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 32, 64)

# The seeds of the probe and fine-tuning recipes: one fit per seed, metrics are mean ± sd over them.
DEFAULT_SEEDS: tuple[int, ...] = (0,)


def _check_at_least(options: object, least: int, *names: str) -> None:
    """An `ArgumentError` for the first of `names` below `least` (None means "not set" and passes)."""
    for name in names:
        value = getattr(options, name)
        if value is not None and value < least:
            raise ArgumentError(f"{{{name}}} must be at least {least}", name)


@dataclass
class DataOptions:
    """How to read and split a labelled file (see `read_labelled` and `make_split`).

    Attributes:
        sequence_column: the sequence or SMILES column (None: the first of sequence, seq, smiles, ...
            in any case).
        label_column: the label column (None: the first of label, target, y, score, ... in any case).
        split_column: a column of train/valid/test values (None: split, set or fold if present;
            "none": such a column is ignored).
        task: "classification", "regression", or "auto": classification for text labels or at most 10
            distinct integers, else regression.
        split: "auto" (the file's split column if any, else random), "column", "random", "scaffold"
            (Bemis-Murcko groups, largest first: test holds the rarest scaffolds) or
            "scaffold-balanced" (Bemis-Murcko groups in a seeded random order); scaffolds need SMILES.
        fractions: train, valid and test fractions of the random and scaffold splits, and the valid
            share carved from the train rows of a column split without validation rows.
        split_seed: seed of the random and scaffold-balanced splits.
    """

    sequence_column: str | None = None
    label_column: str | None = None
    split_column: str | None = None
    task: str = "auto"
    split: str = "auto"
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0


@dataclass
class FinetuneOptions:
    """How the fine-tuning recipe trains (`biolm.evaluation.finetune.finetune`, which checks the
    choices against the model: a DNA model for rc_augment, the linear head for a probe start).

    The fields are listed in the order the report states them.

    Attributes:
        head: "linear" or "mlp", on the mean-pooled final hidden states.
        lr: AdamW learning rate.
        lr_schedule: "constant", or "warmup-cosine": linear warm-up over the first 10 % of the planned
            steps (max epochs x batches), then cosine decay to 0.
        weight_decay: AdamW weight decay.
        batch_size: sequences per batch.
        max_epochs: epochs at most.
        max_steps: optimizer steps at most (-1: no limit).
        patience: epochs without improvement on valid before stopping.
        head_init: "random", or "probe": the head starts as the linear probe of the frozen model, so
            fine-tuning starts where the probe ends (linear head only).
        rc_augment: DNA models: each training row is read from a random strand, and validation and
            test outputs are averaged over both strands.
    """

    head: str = "linear"
    lr: float = 1e-4
    lr_schedule: str = "constant"
    weight_decay: float = 0.01
    batch_size: int = 16
    max_epochs: int = 10
    max_steps: int = -1
    patience: int = 3
    head_init: str = "random"
    rc_augment: bool = False

    def __post_init__(self) -> None:
        _check_at_least(self, 1, "batch_size", "max_epochs", "patience")


@dataclass
class BaselineOptions:
    """The site-independent model beside a zero-shot score (`biolm.evaluation.site_independent`,
    which checks identity and pseudocount).

    Attributes:
        msa: its MSA (None: no baseline, unless a context MSA is given, which is then used).
        identity: sequence weights count neighbours at least this identical.
        pseudocount: per amino acid and column.
        ensemble_weight: w in the ensemble score w * model + (1 - w) * site-independent (both are
            log-likelihood ratios in nats).
    """

    msa: str | Path | None = None
    identity: float = 0.8
    pseudocount: float = 0.5
    ensemble_weight: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.ensemble_weight <= 1:
            raise ArgumentError(
                f"{{ensemble_weight}} must be in [0, 1], got {self.ensemble_weight}", "ensemble_weight"
            )


@dataclass(kw_only=True)
class GenerationOptions:
    """What both generation recipes share: the split of each set, the gain curve, the prompts and the
    sampler. The recipes' own classes set the defaults that differ by domain.

    Attributes:
        sizes: context sizes k of the gain curve (0: the held-out members scored after `<bos>` alone).
        held_out: members held out per set, at most half of it; the rest is the context pool, and
            held-out members never enter a prompt.
        draws: random orders of the pool per set for the gain curve.
        num_samples: samples per set, generated after prompts of pool members.
        sample_context: most pool members in a sampling prompt.
        samples_per_prompt: samples generated from each prompt (each prompt a fresh random choice).
        max_new_tokens: most tokens per sample.
        temperature: sampling temperature (0: greedy).
        top_k: sample among the k most likely tokens (None: among all).
        top_p: nucleus sampling, the smallest set of tokens with this mass (None: off).
        min_p: drop tokens below this fraction of the best one's probability (None: off).
        seed: seeds the splits, the gain curve's orders, the prompts and the samples.
    """

    sizes: tuple[int, ...] = DEFAULT_SIZES
    held_out: int  # the fields without a default here have one in each recipe's class
    draws: int = 2
    num_samples: int
    sample_context: int
    samples_per_prompt: int = 5
    max_new_tokens: int | None
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _check_at_least(
            self, 1, "draws", "samples_per_prompt", "held_out", "sample_context", "max_new_tokens"
        )
        _check_at_least(self, 0, "num_samples")
        check_sampling(self.temperature, self.top_k, self.top_p, self.min_p, self.seed)

    @property
    def sampling(self) -> dict:
        """The sampler's settings, as `biolm.inference.generate.sample_texts` takes them."""
        return {
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "min_p": self.min_p,
        }


@dataclass(kw_only=True)
class ProteinGenerationOptions(GenerationOptions):
    """The protein generation recipe (`biolm.evaluation.protein_generation`); see `GenerationOptions`
    for the fields both recipes share.

    Attributes:
        hmm_dir: profile HMMs named after the families (`PF00096_seed.fasta` -> `PF00096.hmm`; None:
            no HMM hits are measured).
        held_out: 16 members per family.
        num_samples: 20 per family.
        sample_context: 32 pool members per prompt.
        max_new_tokens: None: twice the family's longest member, at least 32.
    """

    hmm_dir: str | os.PathLike | None = None
    held_out: int = 16
    num_samples: int = 20
    sample_context: int = 32
    max_new_tokens: int | None = None


@dataclass(kw_only=True)
class MoleculeGenerationOptions(GenerationOptions):
    """The molecule generation recipe (`biolm.evaluation.molecule_generation`); see
    `GenerationOptions` for the fields both recipes share.

    Attributes:
        num_unconditional: samples from `<bos>`, for the MOSES metrics.
        train: training molecules (a file or a directory of files), read whole, for the novelty of
            the unconditional samples (None: novelty not measured).
        test: reference molecules (a file or a directory) for FCD, SNN, fragment and scaffold
            similarity and property distances (None: not measured).
        max_reference: a seeded sample of at most this many `test` molecules (None: all of them).
        column: the SMILES column of CSV/TSV files (None: auto-detected).
        token_budget: most tokens of a set-conditioned prompt (`<bos>` and every `<sep>` included).
        held_out: 100 molecules per set.
        num_samples: 200 per set.
        sample_context: 64 pool molecules per prompt, as many as fit `token_budget`.
        max_new_tokens: 128 tokens per SMILES.
    """

    num_unconditional: int = 1000
    train: str | os.PathLike | None = None
    test: str | os.PathLike | None = None
    max_reference: int | None = 10000
    column: str | None = None
    token_budget: int = 2048
    held_out: int = 100
    num_samples: int = 200
    sample_context: int = 64
    max_new_tokens: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_at_least(self, 1, "max_reference")
        _check_at_least(self, 0, "num_unconditional")


@dataclass
class ContextOptions:
    """How the zero-shot recipe draws and reads a homolog context
    (`biolm.evaluation.zeroshot_context`).

    Attributes:
        path: the MSA.
        token_budget: the most context tokens (`<bos>` and every `<sep>` included).
        replicates: contexts drawn (different homologs); their scores are averaged.
        seed: seed of the first replicate (replicate r uses seed + r).
        max_identity: leave out homologs at least this identical to the wild type (None: only exact
            copies are left out).
        max_members: at most this many homologs per context (None: as many as fit).
        prefill_tokens: tokens read per forward pass while prefilling (bounds the memory).
        score: "causal" or "fim" (see the module docstring).
    """

    path: str | os.PathLike
    token_budget: int = DEFAULT_CONTEXT_TOKENS
    replicates: int = 1
    seed: int = 0
    max_identity: float | None = None
    max_members: int | None = None
    prefill_tokens: int = DEFAULT_PREFILL_TOKENS
    score: str = "causal"

    def __post_init__(self) -> None:
        if self.token_budget < 3:
            raise ArgumentError(
                f"{{token_budget}} must be at least 3 (<bos>, a residue, <sep>), got {self.token_budget}",
                "token_budget",
            )
        if self.replicates < 1:
            raise ArgumentError(f"{{replicates}} must be at least 1, got {self.replicates}", "replicates")
        if self.max_identity is not None and not 0 < self.max_identity <= 1:
            raise ArgumentError(
                f"{{max_identity}} must be in (0, 1], got {self.max_identity}", "max_identity"
            )
        if self.max_members is not None and self.max_members < 1:
            raise ArgumentError(f"{{max_members}} must be at least 1, got {self.max_members}", "max_members")
        if self.prefill_tokens < 1:
            raise InputError(f"prefill_tokens must be at least 1, got {self.prefill_tokens}")
        if self.score not in SCORES:
            raise InputError(f"unknown context score {self.score!r}; expected one of {', '.join(SCORES)}")
