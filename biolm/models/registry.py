"""The block registry: pattern letter -> block class (`ModelConfig.pattern`, e.g. "mmsm").

One module per block type holds its layer and block: `m` :mod:`.mlstm`, `s` :mod:`.slstm`,
`a` :mod:`.linear_attention`, `t` :mod:`.attention`, `x` :mod:`.xlstm7b`; a new type adds its letter
here and to `config.AVAILABLE_BLOCKS`.
"""

from __future__ import annotations

from torch import nn

from biolm.models.attention import AttentionBlock
from biolm.models.linear_attention import LinearAttentionBlock
from biolm.models.mlstm import MLSTMBlock
from biolm.models.slstm import SLSTMBlock
from biolm.models.xlstm7b import XLSTM7BBlock

BLOCK_CLASSES: dict[str, type[nn.Module]] = {
    "m": MLSTMBlock,
    "s": SLSTMBlock,
    "a": LinearAttentionBlock,
    "t": AttentionBlock,
    "x": XLSTM7BBlock,
}
