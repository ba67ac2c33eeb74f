"""What a domain is: one alphabet of sequences (DNA, proteins, molecules as SMILES) and everything
about it that differs from another alphabet. The rest of biolm asks a `Domain` instead of branching on
a domain's name; `biolm.domains` registers them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biolm.errors import InputError
from biolm.io.outputs import FASTA, FileKind
from biolm.io.records import RecordRules
from biolm.tokenizers.base import Tokenizer

# What a domain can do beyond causal training, embedding and sampling (every domain does those):
IN_CONTEXT = "in_context"  # members of a set as context (data.packing=sets, generate --context)
INFILL = "infill"  # fill-in-the-middle spans (task.objective=fim, generate --infill)
REVERSE_COMPLEMENT = "reverse_complement"  # a double strand: rc_augment, RC-equivariant models
HOMOLOG_CONTEXT = "homolog_context"  # variants scored after homologs of an alignment (eval zeroshot)
CAPABILITIES = (IN_CONTEXT, INFILL, REVERSE_COMPLEMENT, HOMOLOG_CONTEXT)


@dataclass
class DomainData:
    """What the training runner needs from a domain.

    Attributes:
        tokenizer: saved with the model.
        datamodule: training and validation loaders (a LightningDataModule).
        description: printed before training (what data, how much).
        baseline: None, or a function run after training that returns (Markov order, summed NLL,
            number of targets) on the same validation targets as the model.
        masking: keyword arguments of `MaskedLMTask` for this domain (which ids replace a masked
            token, which are never targets).
    """

    tokenizer: Tokenizer
    datamodule: Any
    description: str
    baseline: Callable[[], tuple[int, float, int]] | None = None
    masking: dict = field(default_factory=dict)


@dataclass
class ContextMembers:
    """The usable members of a context file (a protein family, a molecule set), in the seeded order in
    which a prompt takes them; each fits the token budget alone.

    Attributes:
        ids: [L_j] token ids of each member (no specials).
        texts: each member as written in the prompt (residues, or SMILES as tokenized).
        reference: every distinct valid member of the file, those too long for the budget included (to
            judge the novelty of generated members against the whole file).
        total: records read from the file, valid or not.
        dropped: records left out, by reason (zero counts omitted).
    """

    ids: list[np.ndarray]
    texts: list[str]
    reference: list[str]
    total: int
    dropped: dict[str, int] = field(default_factory=dict)


# (texts, reference or None) -> (kept texts, counts of each stage or None)
SampleCleaner = Callable[[Sequence[str], Sequence[str] | None], tuple[list[str], dict[str, int] | None]]
# (path, tokenizer, seed=, token_budget=, column=, randomize=, unknown=) -> ContextMembers
ContextReader = Callable[..., ContextMembers]
# (training config, starting model's tokenizer or None) -> DomainData
TrainingData = Callable[[Any, Tokenizer | None], DomainData]


def novel_samples(
    counts: dict[str, int], kept: list[str], distinct: list[str], known: set[str] | None, drop_known: bool
) -> list[str]:
    """Count the distinct samples not in `known` as counts["novel"] (with a reference set) and return
    `kept`, without the known ones if `drop_known`."""
    if known is None:
        return kept
    counts["novel"] = sum(s not in known for s in distinct)
    return [s for s in kept if s not in known] if drop_known else kept


def keep_samples(texts: Sequence[str], reference: Sequence[str] | None = None) -> tuple[list[str], None]:
    """The cleaner of a domain whose samples are kept as sampled (no counts): samples that run to their
    length limit are never empty."""
    return list(texts), None


def non_empty_samples(
    texts: Sequence[str], reference: Sequence[str] | None = None
) -> tuple[list[str], dict[str, int]]:
    """The default cleaner: samples that end at once (the model's first token was `<eos>`) are left out,
    as a FASTA record cannot be empty; counts {"generated", "non_empty"}."""
    kept = [t for t in texts if t]
    return kept, {"generated": len(texts), "non_empty": len(kept)}


@dataclass(frozen=True)
class Domain:
    """One alphabet of sequences and what differs by it.

    Attributes:
        name: the one name, used everywhere: `biolm train NAME`, the packaged configs
            (`biolm/configs/NAME/`), run names, errors.
        title: what its sequences are, for messages ("DNA", "proteins", "molecules (SMILES)").
        tokenizer_class: its tokenizer; `tokenizer_class.kind` is the kind saved in a model's
            tokenizer.json, by which a loaded model finds its domain.
        training_data: builds the tokenizer and DataModule of a training run from its config.
        records: how embed/generate inputs are read and checked (`biolm.io.records.RecordRules`).
        aliases: other spellings users may type (old names, plurals).
        objectives: the `task.objective` values that apply.
        capabilities: what it can do beyond causal training, embedding and sampling (`CAPABILITIES`).
        options: the domain-specific `data.*` keys that apply (e.g. "rc_augment").
        clean_samples: post-processing of generated texts (validity, canonical form, duplicates).
        read_context: reads a context file into members (domains with `IN_CONTEXT`).
        output: the format of generated samples (FASTA or SMILES).
        sample_noun: what a sample is called in messages ("sequences", "molecules").
        member_noun: what a member of a context set is called ("members", "molecules").
        ends_samples: samples end at the model's `<eos>`/`<sep>`; False: a sample runs to the length
            limit with no special token (DNA is trained on genome windows without an end).
        max_new_tokens: the default length limit of a sample.
        perplexity_unit: what one target is ("nucleotide", "token").
        config_dir: the folder of its training configs (`default.yaml` and recipes); None: the packaged
            `biolm/configs/NAME/`.
    """

    name: str
    title: str
    tokenizer_class: type[Tokenizer]
    training_data: TrainingData
    records: RecordRules = RecordRules()
    aliases: tuple[str, ...] = ()
    objectives: frozenset[str] = frozenset({"clm"})
    capabilities: frozenset[str] = frozenset()
    options: frozenset[str] = frozenset()
    clean_samples: SampleCleaner = non_empty_samples
    read_context: ContextReader | None = None
    output: FileKind = FASTA
    sample_noun: str = "sequences"
    member_noun: str = "members"
    ends_samples: bool = True
    max_new_tokens: int = 256
    perplexity_unit: str = "token"
    config_dir: Path | None = None

    def __post_init__(self) -> None:
        unknown = set(self.capabilities) - set(CAPABILITIES)
        if unknown:
            raise ValueError(f"domain {self.name!r}: unknown capabilities {sorted(unknown)}")
        if (IN_CONTEXT in self.capabilities) != (self.read_context is not None):
            raise ValueError(f"domain {self.name!r}: capability {IN_CONTEXT!r} goes with read_context")

    @property
    def tokenizer_kind(self) -> str:
        return self.tokenizer_class.kind

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    def require(self, capability: str, what: str, source: str | os.PathLike | None = None) -> None:
        """Raise a one-line InputError unless the domain has `capability`: "`what` needs ..., not a
        <title> model" (naming `source` first where given)."""
        if self.supports(capability):
            return
        able = [d.title for d in registered() if d.supports(capability)]
        prefix = f"{source}: " if source is not None else ""
        raise InputError(
            f"{prefix}{what} needs a {' or '.join(able) or 'no known'} model, not a {self.title} model"
        )


_REGISTRY: dict[str, Domain] = {}
# Tokenizer kinds that `register` made loadable (the built-in ones are known to biolm.tokenizers itself).
_ADDED_TOKENIZERS: set[str] = set()


def register(domain: Domain) -> Domain:
    """Make `domain` known by its name, its aliases and its tokenizer kind; registers the tokenizer class
    so that a saved model of the domain loads. Registering a name again replaces it (tests do)."""
    from biolm.tokenizers import TOKENIZER_CLASSES

    for key in (domain.name, *domain.aliases):
        other = _REGISTRY.get(key)
        if other is not None and other.name != domain.name:
            raise ValueError(f"domain name {key!r} is already {other.name!r}'s")
    _REGISTRY[domain.name] = domain
    for alias in domain.aliases:
        _REGISTRY[alias] = domain
    if domain.tokenizer_kind not in TOKENIZER_CLASSES:
        TOKENIZER_CLASSES[domain.tokenizer_kind] = domain.tokenizer_class
        _ADDED_TOKENIZERS.add(domain.tokenizer_kind)
    return domain


def unregister(name: str) -> None:
    """Forget a domain (its aliases, and the tokenizer kind its registration made loadable)."""
    from biolm.tokenizers import TOKENIZER_CLASSES

    domain = _REGISTRY.get(name)
    if domain is None:
        return
    for key in [k for k, d in _REGISTRY.items() if d is domain]:
        del _REGISTRY[key]
    if domain.tokenizer_kind in _ADDED_TOKENIZERS:
        _ADDED_TOKENIZERS.discard(domain.tokenizer_kind)
        TOKENIZER_CLASSES.pop(domain.tokenizer_kind, None)


def registered() -> list[Domain]:
    """Every registered domain once, in registration order."""
    return list({id(d): d for d in _REGISTRY.values()}.values())


def names() -> list[str]:
    """The domains' names (not their aliases), in registration order."""
    return [d.name for d in registered()]


def get_domain(name: str) -> Domain:
    """The domain called `name` (or one of its aliases), case-insensitively.

    Raises:
        InputError: an unknown name, listing the known ones.
    """
    found = _REGISTRY.get(str(name).lower())
    if found is None:
        raise InputError(f"unknown domain {name!r}; available: {', '.join(names())}")
    return found


def domain_of(tokenizer: Tokenizer) -> Domain:
    """The domain of a model's tokenizer (by the tokenizer's kind).

    Raises:
        InputError: a tokenizer of no registered domain.
    """
    kind = getattr(tokenizer, "kind", None)
    for domain in registered():
        if domain.tokenizer_kind == kind:
            return domain
    raise InputError(f"no domain reads tokenizer kind {kind!r}; available: {', '.join(names())}")
