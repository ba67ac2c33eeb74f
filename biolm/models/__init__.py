"""Models: configuration, layers, blocks, the `BioLM` backbone and save/load."""

from biolm.models.backbone import BioLM, LMOutput
from biolm.models.config import ModelConfig

__all__ = ["BioLM", "LMOutput", "ModelConfig"]
