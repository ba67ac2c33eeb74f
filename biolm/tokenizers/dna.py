"""DNA tokenizer: one token per nucleotide (A, C, G, T, N) plus reverse complement on ids."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from biolm.tokenizers.base import CharTokenizer, is_torch_tensor

# IUPAC ambiguity codes denote an uncertain base; the models only distinguish "some base" as N.
IUPAC_AMBIGUITY = "RYSWKMBDHV"


class DNATokenizer(CharTokenizer):
    """Nucleotide tokenizer.

    Vocabulary: the six specials (ids 0-5) then ``A C G T N`` (ids 6-10); ``vocab_size`` is 11.
    Input is case-insensitive (soft-masked genomes), IUPAC ambiguity codes map to ``N``, and anything
    else (``U``, gaps, digits, whitespace, non-ASCII) raises ``TokenizationError`` unless
    ``unknown="replace"``, which maps it to ``N``.

    Args:
        unknown: ``"error"`` or ``"replace"``.
    """

    kind: ClassVar[str] = "dna"
    ALPHABET: ClassVar[str] = "ACGTN"
    ALIASES: ClassVar[dict[str, str]] = {c: "N" for c in IUPAC_AMBIGUITY}
    REPLACEMENT: ClassVar[str] = "N"
    ALPHABET_NAME: ClassVar[str] = "DNA alphabet is ACGTN plus IUPAC codes RYSWKMBDHV"

    def __init__(self, *, unknown: str = "error") -> None:
        super().__init__(unknown=unknown)
        table = np.arange(self.vocab_size, dtype=np.int64)
        for a, b in ("AT", "TA", "CG", "GC"):
            table[self._index[a]] = self._index[b]
        self._complement = table
        self._complement.setflags(write=False)

    @property
    def complement_table(self) -> np.ndarray:
        """int64 array of shape ``[vocab_size]``: id -> id of its complement (specials and N map to
        themselves). Read-only."""
        return self._complement

    def reverse_complement(self, ids: Any) -> Any:
        """Reverses the last axis and complements every id.

        Specials are kept but moved by the flip; positioning BOS/EOS afterwards is the caller's job.

        Args:
            ids: Integer numpy array or torch tensor of shape ``[..., L]`` (a list is treated as an
                array).

        Returns:
            Same type, shape, dtype (and device for tensors) as ``ids``.

        Raises:
            IndexError: If an id is outside the vocabulary.
        """
        if is_torch_tensor(ids):
            import torch

            table = torch.tensor(self._complement.tolist(), dtype=ids.dtype, device=ids.device)
            return table[ids.flip(-1).long()]
        arr = np.asarray(ids)
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"reverse_complement expects integer ids, got dtype {arr.dtype}")
        return self._complement[arr[..., ::-1]].astype(arr.dtype, copy=False)
