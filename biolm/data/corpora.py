"""The corpora biolm trains on when no data path is given; nothing is downloaded.

dna       the C. diphtheriae NCTC 11397 chromosome (vendored, with its index)
protein   the proteome of the same assembly (vendored)
chem      RDKit's bundled NCI sample (4,999 SMILES)
"""

from __future__ import annotations

from pathlib import Path

BUILTIN_DIR = Path(__file__).parent / "builtin"
BUILTIN_GENOME = BUILTIN_DIR / "cdiphtheriae_NCTC11397.fna.gz"
BUILTIN_PROTEOME = BUILTIN_DIR / "HG003687_proteome.faa.gz"


def builtin_molecules_path() -> Path:
    """RDKit's bundled NCI sample (4,999 SMILES), the default chemistry corpus."""
    from rdkit import RDConfig

    return Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
