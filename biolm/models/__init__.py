"""Models: configuration, layers, blocks, the `BioLM` backbone, RC/bidirectional helpers and save/load."""

from biolm.models.backbone import BioLM, LMOutput
from biolm.models.config import DNA_COMPLEMENT, ModelConfig
from biolm.models.rc import conjoin, reverse_complement, reverse_complement_logits

__all__ = [
    "DNA_COMPLEMENT",
    "BioLM",
    "LMOutput",
    "ModelConfig",
    "conjoin",
    "reverse_complement",
    "reverse_complement_logits",
]
