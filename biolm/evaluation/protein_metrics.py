"""Measures of generated proteins against their family: profile-HMM hits (pyhmmer), identity to the
nearest natural member (Biopython global alignment) and the length distribution."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from biolm.errors import InputError

# Without the HMM's gathering threshold, a hit is a sequence E-value at most this (HMMER's own
# reporting default is 10; 1e-3 is a common inclusion threshold for family membership).
FALLBACK_EVALUE = 1e-3


def _pyhmmer():
    try:
        import pyhmmer
    except ImportError:
        raise InputError(
            "HMM hits need pyhmmer: pip install 'biolm[eval]' (or pip install pyhmmer)"
        ) from None
    return pyhmmer


def read_hmm(path: str | os.PathLike):
    """The first profile HMM of a HMMER3 file (plain or gzipped)."""
    pyhmmer = _pyhmmer()
    try:
        with pyhmmer.plan7.HMMFile(os.fspath(path)) as handle:
            hmm = handle.read()
    except (OSError, ValueError, EOFError) as err:
        raise InputError(f"{path}: not a readable HMMER3 profile ({err})") from None
    if hmm is None:
        raise InputError(f"{path}: no profile HMM in the file")
    return hmm


@dataclass
class HmmHits:
    """Which sequences the family's profile HMM recognises.

    Attributes:
        hit: [N] bool, the sequence is included by the threshold.
        score: [N] sequence bit score (nan where HMMER reported nothing).
        threshold: how a hit was decided, e.g. "gathering (GA 26.9 / 26.9 bits)".
    """

    hit: np.ndarray
    score: np.ndarray
    threshold: str


def hmm_hits(hmm_path: str | os.PathLike, sequences: Sequence[str]) -> HmmHits:
    """Search `sequences` with the profile HMM of `hmm_path` (hmmsearch through pyhmmer).

    A sequence is a hit when HMMER includes it under the HMM's gathering cutoffs (Pfam's curated
    family threshold on the sequence and domain bit scores), or, for an HMM without them, when its
    sequence E-value (over these sequences as the database) is at most `FALLBACK_EVALUE`.
    Empty sequences are never hits.
    """
    pyhmmer = _pyhmmer()
    hmm = read_hmm(hmm_path)
    hit = np.zeros(len(sequences), dtype=bool)
    score = np.full(len(sequences), np.nan)
    gathering = hmm.cutoffs.gathering_available()
    if gathering:
        ga = hmm.cutoffs.gathering
        threshold = f"gathering (GA {ga[0]:g} / {ga[1]:g} bits)"
        options = {"bit_cutoffs": "gathering"}
    else:
        threshold = f"sequence E-value <= {FALLBACK_EVALUE:g} (the HMM has no gathering cutoffs)"
        options = {"incE": FALLBACK_EVALUE, "incdomE": FALLBACK_EVALUE}
    alphabet = pyhmmer.easel.Alphabet.amino()
    named = [(str(i), s) for i, s in enumerate(sequences) if s]
    if not named:
        return HmmHits(hit, score, threshold)
    texts = [pyhmmer.easel.TextSequence(name=name, sequence=seq) for name, seq in named]
    block = pyhmmer.easel.TextSequenceBlock(texts).digitize(alphabet)
    for found in next(iter(pyhmmer.hmmsearch(hmm, block, cpus=1, **options))):
        name = found.name.decode() if isinstance(found.name, bytes) else found.name
        index = int(name)
        score[index] = found.score
        hit[index] = bool(found.included)
    return HmmHits(hit, score, threshold)


@lru_cache(maxsize=1)
def _aligner():
    from Bio.Align import PairwiseAligner, substitution_matrices

    # EMBOSS needle's defaults: BLOSUM62, gap open 10, extend 0.5 (global alignment).
    aligner = PairwiseAligner(mode="global")
    aligner.substitution_matrix = substitution_matrices.load("BLOSUM62")
    aligner.open_gap_score, aligner.extend_gap_score = -10.0, -0.5
    return aligner


# Selenocysteine and pyrrolysine are not in BLOSUM62: aligned as X (so U and O count as identical; both
# are rare enough for that not to matter to a nearest-member identity).
_OFF_MATRIX = str.maketrans({"U": "X", "O": "X"})


def identity(a: str, b: str) -> float:
    """Identical aligned residues over the length of the shorter sequence, after a global alignment
    (BLOSUM62, gaps 10 / 0.5). A sequence contained in the other scores 1. Empty: 0."""
    if not a or not b:
        return 0.0
    alignment = _aligner().align(a.translate(_OFF_MATRIX), b.translate(_OFF_MATRIX))[0]
    return alignment.counts().identities / min(len(a), len(b))


def nearest_identity(samples: Sequence[str], references: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """For each sample, the identity to its most similar reference and that reference's index.

    Returns:
        identity [N] float64 in [0, 1] and index [N] int64 (-1 without references or for an empty
        sample).
    """
    best = np.zeros(len(samples))
    which = np.full(len(samples), -1, dtype=np.int64)
    for i, sample in enumerate(samples):
        if not sample:
            continue
        values = [identity(sample, reference) for reference in references]
        if values:
            which[i] = int(np.argmax(values))
            best[i] = values[which[i]]
    return best, which


def length_summary(lengths: Sequence[int]) -> dict[str, float]:
    """Mean, sd, median, 5th and 95th percentiles of a list of lengths (nan when empty)."""
    x = np.asarray(lengths, dtype=float)
    if not len(x):
        return {k: float("nan") for k in ("mean", "sd", "median", "p5", "p95")}
    return {
        "mean": float(x.mean()),
        "sd": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
        "median": float(np.median(x)),
        "p5": float(np.percentile(x, 5)),
        "p95": float(np.percentile(x, 95)),
    }


def hmm_for_family(family_file: Path, hmm_dir: Path) -> Path | None:
    """The HMM of a family file in `hmm_dir`: `<key>.hmm` (or `.hmm.gz`), where the key is the family
    file's name up to its first `_` or `.` (`PF00096_seed.fasta` -> `PF00096.hmm`)."""
    key = family_file.name.split(".")[0].split("_")[0]
    for suffix in (".hmm", ".hmm.gz"):
        candidate = hmm_dir / f"{key}{suffix}"
        if candidate.is_file():
            return candidate
    return None
