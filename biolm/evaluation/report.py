"""The evaluation report: report.md, PNG plots and metrics.json, written atomically into one directory."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from biolm.io.outputs import DirectoryKind, Inputs, check_directory_output, output_directory

Plot = Callable[[object], None]  # draws on a matplotlib Axes


def _recognise_report(directory: Path) -> set[str] | None:
    """The files of a report written before report directories carried biolm's output marker: report.md,
    a metrics.json titled `biolm eval ...`, PNG plots and TSV tables, nothing else."""
    names = {entry.name for entry in os.scandir(directory)}
    if not {"report.md", "metrics.json"} <= names:
        return None
    if any(not (directory / n).is_file() or not n.endswith((".md", ".json", ".png", ".tsv")) for n in names):
        return None
    try:
        title = json.loads((directory / "metrics.json").read_text(encoding="utf-8")).get("title", "")
    except (OSError, ValueError, AttributeError):
        return None
    return names if isinstance(title, str) and title.startswith("biolm eval") else None


REPORT_DIRECTORY = DirectoryKind("report directory", "report", _recognise_report)


def check_report_directory(out_dir: str | os.PathLike, *inputs: str | os.PathLike | None) -> Path:
    """Refuse `out_dir` before any work when the report cannot be written there: it is or holds one of
    the recipe's `inputs`, holds anything but an earlier report, or cannot be written
    (`biolm.io.outputs.check_directory_output`).

    Raises:
        OutputError: naming `out_dir` and why.
    """
    return check_directory_output(out_dir, REPORT_DIRECTORY, Inputs.of(*inputs))


def format_metric(summary: dict) -> str:
    """`0.812 ± 0.013` (mean ± sample sd over seeds)."""
    mean, sd = summary["mean"], summary["sd"]
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.4f} ± {sd:.4f}"


def markdown(
    title: str,
    facts: dict[str, object],
    metrics: dict[str, dict],
    plots: list[str],
    sections: Sequence[str] = (),
) -> str:
    """The report text: facts (data, splits, model, time), a metric table (when there are metrics),
    further markdown sections (e.g. tables of their own) and the plots."""
    lines = [f"# {title}", ""]
    lines += [f"- **{key}**: {value}" for key, value in facts.items()]
    lines.append("")
    if metrics:
        lines += ["| metric | mean ± sd | per seed |", "|---|---|---|"]
        for name, summary in metrics.items():
            values = ", ".join(f"{v:.4f}" for v in summary["values"])
            lines.append(f"| {name} | {format_metric(summary)} | {values} |")
        lines.append("")
    for section in sections:
        lines += [section.rstrip("\n"), ""]
    for name in plots:
        lines += [f"![{name}]({name}.png)", ""]
    return "\n".join(lines)


def scatter_plot(
    x: np.ndarray, y: np.ndarray, xlabel: str, ylabel: str, title: str, diagonal: bool = False
) -> Plot:
    """A scatter of y against x (e.g. predicted against true values, with the y = x line)."""

    def draw(ax) -> None:
        ax.scatter(x, y, s=6, alpha=0.5)
        if diagonal:
            low, high = float(min(np.min(x), np.min(y))), float(max(np.max(x), np.max(y)))
            ax.plot([low, high], [low, high], color="grey", linestyle=":")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)

    return draw


def roc_plot(y_true: np.ndarray, proba: np.ndarray, classes: list[str], title: str) -> Plot:
    """ROC curves: the positive class for two classes, one-vs-rest per present class otherwise."""
    from sklearn.metrics import roc_curve

    def draw(ax) -> None:
        k = proba.shape[1]
        shown = [1] if k == 2 else list(range(k))
        for c in shown:
            positive = y_true == c
            if positive.all() or not positive.any():
                continue
            fpr, tpr, _ = roc_curve(positive, proba[:, c])
            ax.plot(fpr, tpr, label=str(classes[c]))
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(title)
        if k > 2:
            ax.legend(fontsize="small")

    return draw


def write_report(
    out_dir: str | os.PathLike,
    title: str,
    facts: dict[str, object],
    metrics: dict[str, dict],
    plots: dict[str, Plot],
    extra: dict | None = None,
    *,
    sections: Sequence[str] = (),
    files: Mapping[str, str] | None = None,
) -> Path:
    """Write report.md, one PNG per plot and metrics.json into `out_dir`, replacing it as a whole.

    `sections` are markdown blocks put after the metric table; `files` maps further file names of the
    directory (e.g. `samples.tsv`) to their text.

    Everything is written to a temporary sibling first and renamed into place, so an interrupted run
    never leaves a half-written report (or loses the previous one before the new one is complete).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    with output_directory(out, REPORT_DIRECTORY) as staging:
        for name, draw in plots.items():
            fig, ax = plt.subplots(figsize=(5, 4))
            draw(ax)
            fig.tight_layout()
            fig.savefig(staging / f"{name}.png", dpi=100)
            plt.close(fig)
        (staging / "report.md").write_text(markdown(title, facts, metrics, list(plots), sections))
        for name, text in (files or {}).items():
            (staging / name).write_text(text)
        payload = {
            "title": title,
            **{k: _plain(v) for k, v in facts.items()},
            "metrics": metrics,
            **(extra or {}),
        }
        (staging / "metrics.json").write_text(json.dumps(payload, indent=2, allow_nan=True) + "\n")
    return out


def _plain(value: object) -> object:
    return value if isinstance(value, (int, float, str, bool, list, dict, type(None))) else str(value)
