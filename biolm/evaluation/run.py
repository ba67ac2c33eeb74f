"""The evaluation recipes behind `biolm eval`: probe, fine-tune and zero-shot, each ending in a report.

Each recipe takes its settings as the options dataclasses of `biolm.evaluation.options` (re-exported
here), which hold every default and check every value.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from biolm.evaluation.options import DEFAULT_SEEDS, BaselineOptions, DataOptions, FinetuneOptions
from biolm.evaluation.report import Plot, check_report_directory, roc_plot, scatter_plot, write_report
from biolm.evaluation.splits import PARTS, make_split
from biolm.io.labelled import LabelledData, read_labelled
from biolm.tasks.metrics import regression_metrics, summarize

log = logging.getLogger(__name__)


def load_split_data(path: str | Path, opts: DataOptions) -> tuple[LabelledData, np.ndarray]:
    """The labelled rows of `path` and their [N] split ("train" / "valid" / "test")."""
    data = read_labelled(
        path,
        sequence_column=opts.sequence_column,
        label_column=opts.label_column,
        split_column=opts.split_column,
        task=opts.task,
    )
    split = make_split(
        len(data),
        opts.split,
        column=data.split,
        smiles=data.sequences if data.is_smiles else None,
        fractions=opts.fractions,
        seed=opts.split_seed,
        source=data.source,
    )
    return data, split


def _describe_split(data: LabelledData, opts: DataOptions) -> str:
    method = opts.split if opts.split != "auto" else ("column" if data.split is not None else "random")
    if method == "column":
        column = data.columns["split"]
        return f"the file's column {column!r} (without valid rows: a share of train, seed {opts.split_seed})"
    if method == "scaffold":
        return f"Bemis-Murcko scaffold, largest scaffolds first, fractions {opts.fractions}"
    if method == "scaffold-balanced":
        return (
            f"Bemis-Murcko scaffold groups in random order, fractions {opts.fractions}, "
            f"seed {opts.split_seed}"
        )
    return f"random, fractions {opts.fractions}, seed {opts.split_seed}"


def _facts(model_dir, data: LabelledData, split: np.ndarray, opts: DataOptions, seeds, started) -> dict:
    sizes = {part: int(np.sum(split == part)) for part in PARTS}
    facts = {
        "model": str(model_dir),
        "data": data.source,
        "columns": f"sequence {data.columns['sequence']!r}, label {data.columns['label']!r}",
        "task": data.task
        + (f" ({len(data.classes)} classes: {', '.join(data.classes)})" if data.classes else ""),
        "rows": len(data),
        "split": _describe_split(data, opts),
        "split sizes": ", ".join(f"{p} {n}" for p, n in sizes.items()),
        "seeds": ", ".join(str(s) for s in seeds),
    }
    facts["wall time"] = f"{time.perf_counter() - started:.1f} s"
    return facts


def _counts(data: LabelledData, split: np.ndarray) -> dict:
    """Machine-readable sizes for metrics.json."""
    return {"n_rows": len(data), "split_sizes": {part: int(np.sum(split == part)) for part in PARTS}}


def _plots(data: LabelledData, y: np.ndarray, prediction: np.ndarray, seed: int) -> dict[str, Plot]:
    if data.task == "classification":
        return {"roc": roc_plot(y, prediction, data.classes, f"test ROC (seed {seed})")}
    return {
        "predicted_vs_true": scatter_plot(y, prediction, "true", "predicted", f"test set (seed {seed})", True)
    }


def _tokenized(model, data: LabelledData):
    from biolm.inference.embed_ids import tokenize_records

    records = [(f"line {n}", s) for n, s in zip(data.lines, data.sequences, strict=True)]
    return tokenize_records(model, records, data.source)


def run_probe(
    model_dir,
    data_path,
    out_dir,
    opts: DataOptions,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    *,
    device="cpu",
    progress=True,
) -> dict:
    """Frozen embeddings (`embed_ids`) + a linear probe per seed; returns the metrics summary."""
    from biolm.evaluation.probe import evaluate, fit_probe, predict
    from biolm.inference.embed_ids import embed_ids
    from biolm.models.io import load

    started = time.perf_counter()
    check_report_directory(out_dir, model_dir, data_path)
    data, split = load_split_data(data_path, opts)
    model = load(model_dir, device=device)
    x = embed_ids(model, _tokenized(model, data), progress=progress)
    part = {p: split == p for p in PARTS}
    n_classes = len(data.classes) if data.classes else None
    runs, chosen, first = [], [], None
    for seed in seeds:
        estimator, c = fit_probe(
            data.task,
            x[part["train"]],
            data.labels[part["train"]],
            x[part["valid"]],
            data.labels[part["valid"]],
            seed=seed,
            n_classes=n_classes,
        )
        prediction = predict(data.task, estimator, x[part["test"]], n_classes)
        runs.append(evaluate(data.task, data.labels[part["test"]], prediction))
        chosen.append(c)
        first = first if first is not None else prediction
    metrics = summarize(runs)
    facts = _facts(model_dir, data, split, opts, seeds, started)
    kind = "logistic regression (C)" if data.task == "classification" else "ridge regression (alpha = 1/C)"
    facts["probe"] = f"{kind} on standardised mean-pooled embeddings; C chosen on valid: {chosen}"
    write_report(
        out_dir,
        "biolm eval probe",
        facts,
        metrics,
        _plots(data, data.labels[part["test"]], first, seeds[0]),
        {"chosen_C": chosen, **_counts(data, split)},
    )
    return metrics


def run_finetune(
    model_dir,
    data_path,
    out_dir,
    opts: DataOptions,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    training: FinetuneOptions | None = None,
    *,
    device="cpu",
    progress=True,
) -> dict:
    """Full fine-tuning (`finetune.finetune`) per seed from the pretrained weights, as `training` says
    (None: every default of `FinetuneOptions`); returns the summary."""
    from biolm.evaluation.finetune import finetune
    from biolm.evaluation.probe import evaluate
    from biolm.models.io import load

    train_options = asdict(training or FinetuneOptions())
    started = time.perf_counter()
    check_report_directory(out_dir, model_dir, data_path)
    data, split = load_split_data(data_path, opts)
    if not np.any(split == "valid"):
        log.warning("no validation rows: early stopping and checkpoint selection use the training rows")
    ids = None
    n_outputs = len(data.classes) if data.classes else 1
    rows = {}
    runs, first = [], None
    for seed in seeds:
        backbone = load(model_dir, device=device)
        if ids is None:
            ids = _tokenized(backbone, data)
            for p in PARTS:
                # Without validation rows, selection falls back to the training rows (warned above).
                keep = np.flatnonzero(split == (p if p != "valid" or np.any(split == p) else "train"))
                rows[p] = ([ids[i] for i in keep], data.labels[keep])
        prediction = finetune(
            backbone,
            data.task,
            n_outputs,
            rows["train"],
            rows["valid"],
            rows["test"],
            seed=seed,
            accelerator="cpu" if str(device) == "cpu" else "gpu",
            progress=progress,
            **train_options,
        )
        runs.append(evaluate(data.task, rows["test"][1], prediction))
        first = first if first is not None else prediction
    metrics = summarize(runs)
    facts = _facts(model_dir, data, split, opts, seeds, started)
    facts["fine-tuning"] = ", ".join(f"{k} {v}" for k, v in train_options.items())
    plots = _plots(data, rows["test"][1], first, seeds[0])
    write_report(out_dir, "biolm eval finetune", facts, metrics, plots, _counts(data, split))
    return metrics


def _dms_metrics(scan, scores: np.ndarray) -> dict[str, float]:
    result = {"spearman": regression_metrics(scan.scores, scores)["spearman"]}
    if scan.bins is not None and len(np.unique(scan.bins)) == 2:
        # ProteinGym's second metric: how well the score separates functional (bin 1) variants.
        result["auroc"] = float(roc_auc_score(scan.bins, scores))
    return result


def run_zeroshot(
    model_dir,
    scan_path,
    out_dir,
    *,
    device="cpu",
    progress=True,
    context=None,
    baseline: BaselineOptions | None = None,
) -> dict:
    """Zero-shot scores of every variant of a deep mutational scan; returns the metrics summary.

    Args:
        context: `biolm.evaluation.options.ContextOptions` to score after homologs, or None.
        baseline: the site-independent model and the ensemble; with a context its MSA is the default.

    The report has the model's metrics, then (with an MSA) `site_independent_*` and `ensemble_*`, and
    `scores.tsv` with every variant's scores.
    """
    from biolm.evaluation.zeroshot import score_scan
    from biolm.io.dms import read_scan
    from biolm.models.io import load

    started = time.perf_counter()
    baseline = baseline or BaselineOptions()
    check_report_directory(out_dir, model_dir, scan_path, context and context.path, baseline.msa)
    scan = read_scan(scan_path)
    model = load(model_dir, device=device)
    facts = {
        "model": str(model_dir),
        "data": scan.source,
        "variants scored": len(scan.mutants),
        "wild type length": len(scan.wild_type),
    }
    per_replicate = []
    if context is not None:
        from biolm.evaluation.zeroshot_context import score_scan_in_context

        scored = score_scan_in_context(model, scan, context, progress=progress)
        scores, method = scored.scores, scored.method
        pool = scored.homologs
        facts["context"] = f"{pool.source}: {len(pool.ids):,} usable homologs of {pool.total:,} records" + (
            "; left out " + ", ".join(f"{n:,} {why}" for why, n in pool.dropped.items())
            if pool.dropped
            else ""
        )
        facts["context per replicate"] = ", ".join(
            f"{m:,} homologs / {t:,} tokens" for m, t in zip(scored.members, scored.tokens, strict=True)
        )
        per_replicate = [_dms_metrics(scan, row) for row in scored.replicates]
    else:
        scores, method = score_scan(model, scan, progress=progress)
    facts["score"] = method
    result = _dms_metrics(scan, scores)
    columns = {"model": scores}
    msa = baseline.msa if baseline.msa is not None else (context.path if context is not None else None)
    if msa is not None:
        from biolm.evaluation.site_independent import site_independent_scores

        independent, fitted = site_independent_scores(
            msa, scan, identity=baseline.identity, pseudocount=baseline.pseudocount
        )
        w = baseline.ensemble_weight
        ensemble = w * scores + (1 - w) * independent
        columns.update({"site_independent": independent, "ensemble": ensemble})
        result.update({f"site_independent_{k}": v for k, v in _dms_metrics(scan, independent).items()})
        result.update({f"ensemble_{k}": v for k, v in _dms_metrics(scan, ensemble).items()})
        facts["site-independent model"] = (
            f"{msa}: {fitted.effective_sequences:.1f} effective sequences (weights at "
            f"{baseline.identity:.0%} identity), pseudo-count {baseline.pseudocount}"
        )
        facts["ensemble"] = f"{w:g} x model + {1 - w:g} x site-independent"
    metrics = summarize([result])
    if len(per_replicate) > 1:
        # The spread of single contexts, beside the score of their mean above.
        metrics.update({f"replicate_{k}": v for k, v in summarize(per_replicate).items()})
    facts["wall time"] = f"{time.perf_counter() - started:.1f} s"
    rho = result["spearman"]
    title = f"Spearman {rho:.3f}" if not math.isnan(rho) else "Spearman n/a"
    plots = {"score_vs_dms": scatter_plot(scan.scores, scores, "DMS_score", "model score", title)}
    header = "mutant\tDMS_score\t" + "\t".join(columns)
    lines = [
        "\t".join([mutant, f"{dms:g}", *(f"{columns[c][v]:.6g}" for c in columns)])
        for v, (mutant, dms) in enumerate(zip(scan.mutants, scan.scores, strict=True))
    ]
    write_report(
        out_dir,
        "biolm eval zeroshot",
        facts,
        metrics,
        plots,
        {"variants": len(scores)},
        files={"scores.tsv": "\n".join([header, *lines]) + "\n"},
    )
    return metrics
