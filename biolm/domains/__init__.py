"""Domains: DNA, proteins, molecules (SMILES) — one `Domain` object each, registered here, owning what
differs by alphabet (tokenizer, input records, training data, sample post-processing, output format,
context files, which objectives and capabilities apply). Code elsewhere asks the domain
(`get_domain(name)`, `domain_of(model.tokenizer)`) instead of branching on a name.

A new alphabet is one module that builds a `Domain` and calls `register` (see DESIGN.md, "Adding a
domain"); nothing else changes.
"""

from __future__ import annotations

from biolm.domains.base import (
    CAPABILITIES,
    HOMOLOG_CONTEXT,
    IN_CONTEXT,
    INFILL,
    REVERSE_COMPLEMENT,
    ContextMembers,
    Domain,
    DomainData,
    domain_of,
    get_domain,
    names,
    register,
    registered,
    unregister,
)
from biolm.domains.chem import CHEM
from biolm.domains.dna import DNA
from biolm.domains.protein import PROTEIN

for _domain in (DNA, PROTEIN, CHEM):
    register(_domain)

__all__ = [
    "CAPABILITIES",
    "CHEM",
    "DNA",
    "HOMOLOG_CONTEXT",
    "INFILL",
    "IN_CONTEXT",
    "PROTEIN",
    "REVERSE_COMPLEMENT",
    "ContextMembers",
    "Domain",
    "DomainData",
    "domain_of",
    "get_domain",
    "names",
    "register",
    "registered",
    "unregister",
]
