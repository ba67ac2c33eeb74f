"""Run the issue's real-data evaluations on pretrained model directories and print one summary table.

    python benchmarks/eval_real.py --dna runs/dna/model --protein runs/protein/model \\
        --chem runs/chem/model --out reports/real --seeds 0,1,2

Evaluations (each skipped when its domain's model is not given):
    enhancers       DNA   finetune  Genomic Benchmarks human_enhancers_cohn, random 80/10/10 split (seed 0)
    chipseq         DNA   finetune  Oct4 vs MafK ChIP-seq peaks (janggu train/test; valid from train)
    gb1_three       prot  probe     FLIP GB1 three_vs_rest (its own split and validation rows)
    gb1_low_high    prot  probe     FLIP GB1 low_vs_high
    blat            prot  zeroshot  BLAT_ECOLX Jacquier 2013 (ProteinGym), Spearman
    esol            chem  finetune  ESOL log solubility, scaffold split, RMSE
    bbbp            chem  finetune  BBBP blood-brain barrier penetration, scaffold split, AUROC
    bbbp_balanced   chem  finetune  BBBP on a balanced scaffold split (seeded; see --split-seed)

`--only` picks some of them, `--recipe NAME=probe` switches a labelled one between probe and finetune,
`--kmer-baseline` also prints a model-free baseline of the DNA sets (k-mer frequencies + the probe),
`--split-seed S` re-draws the seeded splits (enhancers, bbbp_balanced; run once per seed for a mean
over splits), and `--max-rows N` evaluates a seeded sample of N rows of each file (a smoke check; the
numbers then mean nothing). Each evaluation writes its report to OUT/NAME; OUT/summary.json collects
the metrics. This is a script, not a test: the full runs take hours on a CPU.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

from biolm.evaluation.finetune import HEAD_INITS, LR_SCHEDULES
from biolm.evaluation.options import FinetuneOptions
from biolm.evaluation.report import format_metric
from biolm.evaluation.run import DataOptions, run_finetune, run_probe, run_zeroshot

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data beside the checkout
CHIPSEQ = DATA / "dna" / "chipseq_oct4_mafk"

# name: (domain, recipe, file, data options, metric shown in the summary)
EVALUATIONS = {
    "enhancers": (
        "dna",
        "finetune",
        DATA / "dna" / "gb_human_enhancers_cohn.tsv.gz",
        DataOptions(split="random", split_seed=0),
        "auroc",
    ),
    "chipseq": ("dna", "finetune", None, DataOptions(split="column"), "auroc"),
    "gb1_three": (
        "protein",
        "probe",
        DATA / "protein/flip_gb1/three_vs_rest.csv.gz",
        DataOptions(),
        "spearman",
    ),
    "gb1_low_high": (
        "protein",
        "probe",
        DATA / "protein/flip_gb1/low_vs_high.csv.gz",
        DataOptions(),
        "spearman",
    ),
    "blat": ("protein", "zeroshot", DATA / "protein/blat/BLAT_ECOLX_Jacquier_2013.csv", None, "spearman"),
    "esol": (
        "chem",
        "finetune",
        DATA / "chem/moleculenet/ESOL_delaney-processed.csv",
        DataOptions(label_column="measured log solubility in mols per litre", split="scaffold"),
        "rmse",
    ),
    "bbbp": (
        "chem",
        "finetune",
        DATA / "chem/moleculenet/BBBP.csv",
        DataOptions(label_column="p_np", split="scaffold"),
        "auroc",
    ),
    "bbbp_balanced": (
        "chem",
        "finetune",
        DATA / "chem/moleculenet/BBBP.csv",
        DataOptions(label_column="p_np", split="scaffold-balanced"),
        "auroc",
    ),
}


def chipseq_table(work: Path) -> Path:
    """The Oct4/MafK FASTA files as one table: sequence, label (oct4 | mafk), split (train | test)."""
    from Bio import SeqIO

    path = work / "chipseq_oct4_mafk.tsv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["sequence", "label", "split"])
        for factor in ("oct4", "mafk"):
            for part in ("train", "test"):
                with gzip.open(CHIPSEQ / f"{factor}_{part}.fa.gz", "rt") as fasta:
                    for record in SeqIO.parse(fasta, "fasta"):
                        writer.writerow([str(record.seq).upper(), factor, part])
    return path


def sample_rows(path: Path, n: int, work: Path, seed: int = 0) -> Path:
    """A copy of the table `path` with a seeded sample of n data rows (header kept, order kept)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="") as handle:
        lines = handle.read().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    keep = sorted(np.random.default_rng(seed).choice(len(rows), min(n, len(rows)), replace=False))
    out = work / path.name.removesuffix(".gz")
    out.write_text(header + "".join(rows[i] for i in keep))
    return out


def kmer_baseline(path: Path, opts: DataOptions, k_max: int = 4) -> dict:
    """Test metrics of a model-free baseline for a DNA classification set: the frequencies of all
    1..k_max-mers of each sequence, fed to the same probe as `biolm eval probe` (standardised logistic
    regression, strength chosen on the valid rows), on the same split."""
    from sklearn.feature_extraction.text import CountVectorizer

    from biolm.evaluation.probe import evaluate, fit_probe, predict
    from biolm.evaluation.run import load_split_data

    data, split = load_split_data(path, opts)
    counts = CountVectorizer(analyzer="char", ngram_range=(1, k_max), lowercase=False)
    x = counts.fit_transform([s.upper() for s in data.sequences]).toarray().astype(float)
    x /= np.maximum(x.sum(1, keepdims=True), 1)
    part = {p: split == p for p in ("train", "valid", "test")}
    labels = np.asarray(data.labels)
    probe, _ = fit_probe(
        data.task, x[part["train"]], labels[part["train"]], x[part["valid"]], labels[part["valid"]]
    )
    prediction = predict(data.task, probe, x[part["test"]], len(data.classes))
    return evaluate(data.task, labels[part["test"]], prediction)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dna", type=Path, help="DNA model directory")
    parser.add_argument("--protein", type=Path, help="protein model directory")
    parser.add_argument("--chem", type=Path, help="SMILES model directory")
    parser.add_argument("--out", type=Path, required=True, help="root of the report directories")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--only", help="comma-separated evaluation names (default: all with a model)")
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME=probe|finetune")
    parser.add_argument(
        "--max-rows", type=int, help="smoke check: a seeded sample of this many rows per file"
    )
    parser.add_argument("--max-epochs", type=int, default=10, help="fine-tuning epochs at most")
    parser.add_argument("--max-steps", type=int, default=-1, help="fine-tuning steps at most")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--head-init", choices=HEAD_INITS, default="random")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant")
    parser.add_argument("--rc-augment", action="store_true", help="DNA fine-tuning on both strands")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--split-seed", type=int, help="seed of the seeded splits (default: each evaluation's own, 0)"
    )
    parser.add_argument(
        "--kmer-baseline",
        action="store_true",
        help="also print a model-free baseline for the DNA sets: 1-4-mer frequencies + the same probe",
    )
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    models = {"dna": args.dna, "protein": args.protein, "chem": args.chem}
    recipes = dict(item.split("=", 1) for item in args.recipe)
    names = args.only.split(",") if args.only else list(EVALUATIONS)
    unknown = sorted(set(names) - set(EVALUATIONS))
    if unknown:
        parser.error(f"unknown evaluation(s) {unknown}; known: {list(EVALUATIONS)}")
    work = args.out / "_data"
    work.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name in names:
        domain, recipe, path, opts, shown = EVALUATIONS[name]
        model = models[domain]
        if model is None and not (args.kmer_baseline and domain == "dna"):
            print(f"{name}: skipped (no --{domain} model)")
            continue
        recipe = recipes.get(name, recipe)
        if args.split_seed is not None and opts is not None:
            opts = dataclasses.replace(opts, split_seed=args.split_seed)
        path = chipseq_table(work) if path is None else path
        if args.max_rows:
            path = sample_rows(path, args.max_rows, work)
        if args.kmer_baseline and domain == "dna":
            baseline = kmer_baseline(path, opts)
            scores = ", ".join(f"{k} {v:.4f}" for k, v in baseline.items())
            print(f"{name}: 1-4-mer frequencies + probe: {scores}")
        if model is None:
            continue
        started = time.perf_counter()
        out = args.out / name
        if recipe == "zeroshot":
            metrics = run_zeroshot(model, path, out, device=args.device)
        elif recipe == "probe":
            metrics = run_probe(model, path, out, opts, seeds, device=args.device)
        else:
            training = FinetuneOptions(
                max_epochs=args.max_epochs,
                max_steps=args.max_steps,
                batch_size=args.batch_size,
                lr=args.lr,
                lr_schedule=args.lr_schedule,
                head_init=args.head_init,
                rc_augment=bool(args.rc_augment and domain == "dna"),
            )
            metrics = run_finetune(model, path, out, opts, seeds, training, device=args.device)
        summary[name] = {
            "recipe": recipe,
            "model": str(model),
            "metrics": metrics,
            "seconds": time.perf_counter() - started,
        }
        print(f"{name}: {recipe} {shown} {format_metric(metrics[shown])} ({summary[name]['seconds']:.0f} s)")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\n| evaluation | recipe | metric | mean ± sd | seconds |\n|---|---|---|---|---|")
    for name, entry in summary.items():
        shown = EVALUATIONS[name][4]
        value = format_metric(entry["metrics"][shown])
        print(f"| {name} | {entry['recipe']} | {shown} | {value} | {entry['seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
