"""The warm-up + cosine learning-rate factor."""

from __future__ import annotations

import pytest

from biolm.tasks.lr_schedule import warmup_cosine


def test_warmup_rises_linearly_then_cosine_falls_to_the_floor():
    factor = warmup_cosine(warmup=4, total=14, floor=0.1)
    assert [factor(s) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factor(4) == pytest.approx(1.0)
    assert factor(9) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through the decay
    assert factor(14) == pytest.approx(0.1) and factor(100) == pytest.approx(0.1)
    decay = [factor(s) for s in range(4, 15)]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))


def test_no_warmup_starts_at_full_rate():
    factor = warmup_cosine(warmup=0, total=10)
    assert factor(0) == pytest.approx(1.0) and factor(10) == pytest.approx(0.0)
