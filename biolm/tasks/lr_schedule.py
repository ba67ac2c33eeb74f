"""Learning-rate multipliers shared by pretraining and fine-tuning."""

from __future__ import annotations

import math
from collections.abc import Callable


def warmup_cosine(warmup: int, total: int, floor: float = 0.0) -> Callable[[int], float]:
    """Step -> LR factor: linear warm-up over `warmup` steps, then cosine decay to `floor` at `total`.

    For `torch.optim.lr_scheduler.LambdaLR` stepped once per optimizer step; steps past `total` stay
    at `floor`.
    """
    total = max(total, 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
