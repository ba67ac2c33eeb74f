"""Metrics of generated molecules, as the MOSES benchmark defines them (Polykovskiy et al. 2020), on
RDKit: validity, uniqueness, novelty, internal diversity, similarity to a reference set (SNN, fragments,
scaffolds), Fréchet ChemNet Distance (fcd_torch) and property distributions.

Fingerprints are Morgan (radius 2, 1,024 bits) as in MOSES; Tanimoto similarities are computed on
bit matrices with matrix products, a block of rows at a time. Everything takes SMILES strings; the
functions that compare sets take canonical SMILES of valid molecules (`canonical_valid`). A SMILES too
large for RDKit (`biolm.io.smiles.smiles_too_large`: over `BIOLM_MAX_SMILES_ATOMS` atoms, 1,000 by
default) is never given to RDKit: it is not a valid molecule.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from biolm.errors import InputError
from biolm.io.smiles import canonical_smiles, smiles_too_large

FINGERPRINT_BITS = 1024
_BLOCK = 2048  # rows of a similarity block: 2,048 x N float32


def _mol(smiles: str):
    """RDKit's molecule of `smiles`, None if it is empty, invalid or too large for RDKit."""
    if not smiles or smiles_too_large(smiles):
        return None
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    return Chem.MolFromSmiles(smiles)


def canonical_valid(smiles: Iterable[str]) -> list[str | None]:
    """Canonical SMILES of each input, None where RDKit cannot parse it, it is empty or it is too large
    for RDKit (`biolm.io.smiles.canonical_smiles`, the test of `biolm generate`'s counts)."""
    return [canonical_smiles(s) if s else None for s in smiles]


def validity(canonical: Sequence[str | None]) -> float:
    """Share of generated strings that are valid molecules."""
    return sum(c is not None for c in canonical) / len(canonical) if canonical else float("nan")


def uniqueness(valid: Sequence[str], k: int | None = None) -> float:
    """Share of distinct molecules among the first `k` valid ones (all valid ones when None or fewer)."""
    first = list(valid[:k] if k is not None else valid)
    return len(set(first)) / len(first) if first else float("nan")


def novelty(valid: Sequence[str], reference: set[str]) -> float:
    """Share of the distinct valid molecules that are not in `reference` (canonical SMILES)."""
    unique = set(valid)
    return sum(s not in reference for s in unique) / len(unique) if unique else float("nan")


def fingerprints(smiles: Sequence[str]) -> np.ndarray:
    """[N, 1024] uint8 Morgan fingerprint bits (radius 2) of valid SMILES."""
    from rdkit import DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=FINGERPRINT_BITS)
    out = np.zeros((len(smiles), FINGERPRINT_BITS), dtype=np.uint8)
    for i, s in enumerate(smiles):
        mol = _mol(s)
        if mol is None:
            raise InputError(f"not a valid SMILES for a fingerprint: {s!r}")
        DataStructs.ConvertToNumpyArray(generator.GetFingerprint(mol), out[i])
    return out


def _tanimoto_blocks(a: np.ndarray, b: np.ndarray):
    """Yield (row slice, [rows, len(b)] Tanimoto similarities) of fingerprint matrices a and b."""
    bf = b.astype(np.float32)
    b_bits = bf.sum(axis=1)
    for start in range(0, len(a), _BLOCK):
        af = a[start : start + _BLOCK].astype(np.float32)
        inter = af @ bf.T
        union = af.sum(axis=1)[:, None] + b_bits[None] - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            # Two empty fingerprints are identical (similarity 1), as RDKit's Tanimoto says.
            yield slice(start, start + len(af)), np.where(union > 0, inter / union, 1.0)


def nearest_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a)] the Tanimoto similarity of each fingerprint of `a` to its nearest one in `b`."""
    if not len(b):
        return np.full(len(a), np.nan)
    out = np.zeros(len(a))
    for rows, sim in _tanimoto_blocks(a, b):
        out[rows] = sim.max(axis=1)
    return out


def internal_diversity(fps: np.ndarray, p: int = 1) -> float:
    """MOSES IntDiv_p: 1 - (mean over pairs of distinct molecules of T^p)^(1/p)."""
    n = len(fps)
    if n < 2:
        return float("nan")
    total = 0.0
    for rows, sim in _tanimoto_blocks(fps, fps):
        block = sim.astype(np.float64) ** p
        diagonal = np.arange(rows.start, rows.stop)
        block[np.arange(len(diagonal)), diagonal] = 0.0
        total += float(block.sum())
    return 1.0 - (total / (n * (n - 1))) ** (1.0 / p)


def _cosine(a: Counter, b: Counter) -> float:
    keys = list(set(a) | set(b))
    if not keys:
        return float("nan")
    x = np.array([a.get(k, 0) for k in keys], dtype=float)
    y = np.array([b.get(k, 0) for k in keys], dtype=float)
    norm = np.linalg.norm(x) * np.linalg.norm(y)
    return float(x @ y / norm) if norm else float("nan")


def fragment_counts(smiles: Iterable[str]) -> Counter:
    """BRICS fragments (as SMILES) counted over the molecules (MOSES Frag)."""
    from rdkit.Chem import BRICS

    counts: Counter = Counter()
    for s in smiles:
        mol = _mol(s)
        if mol is not None:
            counts.update(BRICS.BRICSDecompose(mol))
    return counts


def scaffold_counts(smiles: Iterable[str], min_rings: int = 2) -> Counter:
    """Bemis-Murcko scaffolds with at least `min_rings` rings, counted (MOSES Scaf)."""
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    counts: Counter = Counter()
    for s in smiles:
        mol = _mol(s)
        if mol is None:
            continue
        scaffold = MurckoScaffold.GetScaffoldForMol(mol)
        text = Chem.MolToSmiles(scaffold)
        if text and scaffold.GetRingInfo().NumRings() >= min_rings:
            counts[text] += 1
    return counts


def fragment_similarity(generated: Sequence[str], reference: Sequence[str]) -> float:
    """Cosine similarity of the BRICS fragment counts of two sets (1 = the same fragment frequencies)."""
    return _cosine(fragment_counts(generated), fragment_counts(reference))


def scaffold_similarity(generated: Sequence[str], reference: Sequence[str]) -> float:
    """Cosine similarity of the Bemis-Murcko scaffold counts of two sets."""
    return _cosine(scaffold_counts(generated), scaffold_counts(reference))


def properties(smiles: Sequence[str]) -> dict[str, np.ndarray]:
    """{"logP", "QED", "weight"}: [N] RDKit Crippen logP, QED and molecular weight."""
    from rdkit.Chem import QED, Crippen, Descriptors

    mols = [_mol(s) for s in smiles]
    return {
        "logP": np.array([Crippen.MolLogP(m) for m in mols]),
        "QED": np.array([QED.qed(m) for m in mols]),
        "weight": np.array([Descriptors.MolWt(m) for m in mols]),
    }


def property_distances(generated: Sequence[str], reference: Sequence[str]) -> dict[str, float]:
    """Wasserstein-1 distance between the generated and reference distributions of each property."""
    from scipy.stats import wasserstein_distance

    gen, ref = properties(generated), properties(reference)
    return {name: float(wasserstein_distance(gen[name], ref[name])) for name in gen}


def fcd(generated: Sequence[str], reference: Sequence[str], device: str = "cpu") -> float:
    """Fréchet ChemNet Distance between two sets of valid SMILES (fcd_torch; lower is closer)."""
    try:
        from fcd_torch import FCD
    except ImportError:
        raise InputError(
            "FCD needs fcd_torch: pip install 'biolm[eval]' (or pip install fcd_torch)"
        ) from None
    if len(generated) < 2 or len(reference) < 2:
        return float("nan")
    with warnings.catch_warnings():
        # fcd_torch (2019) calls numpy and scipy aliases that now warn; nothing the user can act on.
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(FCD(device=device, n_jobs=1)(list(generated), list(reference)))


def moses_metrics(
    generated: Sequence[str],
    *,
    train: set[str] | None = None,
    test: Sequence[str] | None = None,
    device: str = "cpu",
) -> dict[str, float]:
    """The MOSES table for generated SMILES: valid, unique@1k, unique@10k, novelty (against the
    canonical `train` set), IntDiv1/2, and with a `test` set (canonical, valid) FCD, SNN, Frag, Scaf
    and property distances to it. Metrics after validity use the valid molecules only."""
    canonical = canonical_valid(generated)
    valid = [c for c in canonical if c is not None]
    out = {
        "valid": validity(canonical),
        "unique@1k": uniqueness(valid, 1000),
        "unique@10k": uniqueness(valid, 10000),
    }
    if train is not None:
        out["novelty"] = novelty(valid, train)
    fps = fingerprints(valid)
    out["IntDiv1"] = internal_diversity(fps, 1)
    out["IntDiv2"] = internal_diversity(fps, 2)
    if test is not None and valid:
        out["FCD/test"] = fcd(valid, test, device)
        out["SNN/test"] = float(nearest_similarity(fps, fingerprints(test)).mean())
        out["Frag/test"] = fragment_similarity(valid, test)
        out["Scaf/test"] = scaffold_similarity(valid, test)
        out.update({f"{k} W1/test": v for k, v in property_distances(valid, test).items()})
    return out
