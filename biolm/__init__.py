"""biolm: xLSTM language models for DNA, proteins and small molecules.

Importing `biolm` is cheap: torch and Lightning are imported only when a function needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["embed", "generate", "load", "write_samples", "__version__"]

if TYPE_CHECKING:
    from biolm.inference.embed import embed
    from biolm.inference.generate import generate, write_samples
    from biolm.models.io import load


def __getattr__(name: str) -> Any:
    if name == "load":
        from biolm.models.io import load

        return load
    if name == "embed":
        from biolm.inference.embed import embed

        return embed
    if name in ("generate", "write_samples"):
        from biolm.inference import generate

        return getattr(generate, name)
    raise AttributeError(f"module 'biolm' has no attribute {name!r}")
