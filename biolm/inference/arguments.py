"""The checks of `biolm.generate`'s arguments, in plain Python (no torch), so that `biolm generate` and
`biolm eval generation` refuse a bad flag before they pay for importing torch. The errors are
`ArgumentError` templates: a Python caller reads `top_p must be ...`, a CLI user `--top-p must be ...`.
"""

from __future__ import annotations

import math

from biolm.errors import ArgumentError


def check_generate_arguments(
    n: int,
    max_new_tokens: int | None,
    batch_size: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    min_p: float | None,
    seed: int,
    prompt: str,
    context: object,
    infill: str | None,
    token_budget: int | None,
    column: str | None,
) -> None:
    """Raise an `ArgumentError` for the first bad argument of `biolm.generate`."""
    if n < 1:
        raise ArgumentError(f"{{n}} must be at least 1, got {n}", "n")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise ArgumentError(f"{{max_new_tokens}} must be at least 1, got {max_new_tokens}", "max_new_tokens")
    if batch_size < 1:
        raise ArgumentError(f"{{batch_size}} must be at least 1, got {batch_size}", "batch_size")
    check_sampling(temperature, top_k, top_p, min_p, seed)
    if infill is not None and (context is not None or prompt):
        raise ArgumentError(
            "{infill} cannot be combined with {context} or {prompt}", "infill", "context", "prompt"
        )
    if context is None and (token_budget is not None or column is not None):
        raise ArgumentError(
            "{token_budget} and {column} apply to {context}", "token_budget", "column", "context"
        )


def check_sampling(
    temperature: float, top_k: int | None, top_p: float | None, min_p: float | None, seed: int
):
    """Raise an `ArgumentError` for the first bad sampling setting."""
    if not 0 <= temperature < math.inf:  # NaN and infinity would make every probability NaN
        raise ArgumentError(
            f"{{temperature}} must be 0 (greedy) or a positive finite number, got {temperature}",
            "temperature",
        )
    if top_k is not None and top_k < 1:
        raise ArgumentError(f"{{top_k}} must be at least 1, got {top_k}", "top_k")
    if top_p is not None and not 0 < top_p <= 1:
        raise ArgumentError(f"{{top_p}} must be in (0, 1], got {top_p}", "top_p")
    if min_p is not None and not 0 <= min_p <= 1:
        raise ArgumentError(f"{{min_p}} must be in [0, 1], got {min_p}", "min_p")
    if seed < 0:  # numpy's generators take non-negative seeds only
        raise ArgumentError(f"{{seed}} must be at least 0, got {seed}", "seed")
