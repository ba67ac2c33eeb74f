"""Models: configuration, blocks, the `BioLM` backbone, RC/bidirectional helpers and save/load.

Mirrors :mod:`biolm.kernels`: one module per block type, holding its layer, block and state:
:mod:`.mlstm` (`m`), :mod:`.slstm` (`s`), :mod:`.linear_attention` (`a`), :mod:`.attention` (`t`,
softmax attention) and :mod:`.xlstm7b` (`x`). :mod:`.common` holds what they share (causal conv, norms,
SwiGLU feed-forward, residual block, with their CPU autograd fast paths beside the plain functions),
:mod:`.registry` maps pattern letters to block classes, and :mod:`.backbone`, :mod:`.bidirectional`,
:mod:`.rc`, :mod:`.config` and :mod:`.io` build, wrap, configure and save the model.
"""

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
