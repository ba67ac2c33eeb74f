"""Tables, table cells and plots shared by the generation reports of proteins and molecules."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from biolm.evaluation.incontext import GainCurve
from biolm.evaluation.report import Plot


def _missing(value: float | None) -> bool:
    return value is None or not math.isfinite(value)


def number(value: float | None, digits: int = 2) -> str:
    """A table cell: `value` with `digits` decimals, or a dash where there is none (None, NaN)."""
    return "—" if _missing(value) else f"{value:.{digits}f}"


def percent(value: float | None, digits: int = 0) -> str:
    """A table cell: the fraction `value` as a percentage, or a dash where there is none."""
    return "—" if _missing(value) else f"{100 * value:.{digits}f} %"


def scientific(value: float | None) -> str:
    """A table cell: `value` in scientific notation (p-values), or a dash where there is none."""
    return "—" if _missing(value) else f"{value:.1e}"


def gain_table(curve: GainCurve, unit: str) -> str:
    """Markdown: perplexity per `unit` of each set's held-out members (rows) after k context members
    (columns), the pooled row over the sets measured at every k, and the mean prompt length."""
    ppl = curve.perplexity()
    head = " | ".join(f"k={k}" for k in curve.sizes)
    lines = [
        "## In-context gain",
        "",
        f"Perplexity per {unit} of the held-out members after k context members (— where the set has "
        "fewer than k members in its pool).",
        "",
        f"| set | held out | {head} |",
        "|---|---:|" + "---:|" * len(curve.sizes),
    ]
    for f, name in enumerate(curve.names):
        cells = " | ".join(number(v) for v in ppl[f])
        lines.append(f"| {name} | {curve.held_out[f]} | {cells} |")
    full = np.isfinite(curve.nll).all(axis=1)
    pooled = " | ".join(number(v) for v in curve.pooled_perplexity())
    lines.append(f"| **pooled** ({int(full.sum())} sets with every k) | | {pooled} |")
    with np.errstate(invalid="ignore"):
        tokens = np.nanmean(curve.prompt_tokens, axis=0) if len(curve.names) else np.array([])
    lines.append(f"| mean prompt tokens | | {' | '.join(number(v, 0) for v in tokens)} |")
    return "\n".join(lines)


def gain_plot(curve: GainCurve, ylabel: str) -> Plot:
    """Each set's curve (thin) and the pooled curve (thick) against k on a log2-like axis."""

    def draw(ax) -> None:
        x = np.array(curve.sizes, dtype=float)
        shown = np.where(x == 0, 0.5, x)  # k = 0 drawn at 0.5 on the log axis
        ppl = curve.perplexity()
        for f in range(len(curve.names)):
            ax.plot(shown, ppl[f], color="grey", alpha=0.5, linewidth=0.8)
        ax.plot(shown, curve.pooled_perplexity(), color="C0", linewidth=2.5, marker="o", label="pooled")
        ax.set_xscale("log", base=2)
        ax.set_xticks(shown, [str(k) for k in curve.sizes])
        ax.set_xlabel("context members k")
        ax.set_ylabel(ylabel)
        ax.set_title("in-context gain (grey: each set)")
        ax.legend()

    return draw


def histogram_plot(groups: Mapping[str, Sequence[float]], xlabel: str, bins: int = 30) -> Plot:
    """Overlaid density histograms of several groups of values."""

    def draw(ax) -> None:
        values = [np.asarray(v, dtype=float) for v in groups.values()]
        finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.array([])
        edges = np.histogram_bin_edges(finite, bins=bins) if len(finite) else bins
        for name, v in zip(groups, values, strict=True):
            if np.isfinite(v).any():
                ax.hist(v[np.isfinite(v)], bins=edges, density=True, alpha=0.5, label=f"{name} ({len(v)})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("density")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")

    return draw


def scatter_with_lines(
    x: Sequence[float], y: Sequence[float], xlabel: str, ylabel: str, vertical: float | None = None
) -> Plot:
    """A scatter of y against x, with an optional vertical threshold line."""

    def draw(ax) -> None:
        ax.scatter(x, y, s=8, alpha=0.5)
        if vertical is not None:
            ax.axvline(vertical, color="grey", linestyle=":")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)

    return draw
