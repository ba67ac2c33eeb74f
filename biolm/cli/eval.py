"""`biolm eval RECIPE MODEL_DIR DATA --out DIR`: evaluate a trained model and write a report."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Evaluate a trained model directory on labelled data and write a report directory (report.md, PNG
plots, metrics.json), replaced as a whole when the run completes.

Recipes:
  probe     frozen mean-pooled embeddings + logistic/ridge regression (strength chosen on valid)
  finetune  full fine-tuning of the backbone with a small head, early stopping on valid
  zeroshot  zero-shot variant-effect scores of a deep mutational scan (ProteinGym CSV)
  generation  in-context gain curve and generated samples: profile-HMM hits and novelty for protein
            families, MOSES metrics and set-conditioned similarity for molecules

Examples:
  biolm eval probe runs/protein/model three_vs_rest.csv.gz --out reports/gb1
  biolm eval finetune runs/chem/model BBBP.csv --label-column p_np --split scaffold --out reports/bbbp
  biolm eval zeroshot runs/protein/model BLAT_ECOLX_Jacquier_2013.csv --out reports/blat
  biolm eval generation runs/protein/model pfam_seed/ --hmm-dir pfam_hmm/ --out reports/families
"""


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.8,0.1,0.1, got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.8,0.1,0.1, got {text!r}")
    return values


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 0,1,2, got {text!r}"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError("expected at least one seed")
    return seeds


def _common(parser: argparse.ArgumentParser, data_help: str) -> None:
    parser.add_argument("model_dir", type=Path, help="a model directory (e.g. runs/protein/model)")
    parser.add_argument("data", type=Path, help=data_help)
    parser.add_argument("--out", type=Path, required=True, help="report directory to write (replaced)")
    parser.add_argument("--device", default="cpu", help="torch device for the model (default: cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")


def _labelled(parser: argparse.ArgumentParser) -> None:
    _common(
        parser,
        "labelled CSV/TSV with a sequence (or SMILES) and a label column, or FASTA with "
        "`>id label=1 split=train` headers (optionally .gz)",
    )
    parser.add_argument(
        "--sequence-column", help="sequence column (default: sequence, seq, smiles, ... any case)"
    )
    parser.add_argument(
        "--label-column", help="label column (default: label, target, y, score, ... any case)"
    )
    parser.add_argument(
        "--split-column",
        help="split column of train/valid/test values (default: split/set/fold if present; 'none': ignore)",
    )
    parser.add_argument(
        "--task",
        choices=("auto", "classification", "regression"),
        default="auto",
        help="auto: classification for text labels or at most 10 distinct integers, else regression",
    )
    parser.add_argument(
        "--split",
        choices=("auto", "column", "random", "scaffold", "scaffold-balanced"),
        default="auto",
        help="auto: the file's split column if any, else random; scaffold: Bemis-Murcko groups, largest "
        "first, so test holds the rarest scaffolds (DeepChem/MoleculeNet, deterministic); "
        "scaffold-balanced: Bemis-Murcko groups in a seeded random order (chemprop); both SMILES only",
    )
    parser.add_argument(
        "--fractions",
        type=_fractions,
        default=(0.8, 0.1, 0.1),
        metavar="TRAIN,VALID,TEST",
        help="split fractions for random/scaffold splits, and the valid share carved from a column "
        "split without validation rows (default: 0.8,0.1,0.1)",
    )
    parser.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="seed of the random and scaffold-balanced splits (default: 0)",
    )
    parser.add_argument(
        "--seeds", type=_seeds, default=[0], help="comma-separated seeds; metrics are mean ± sd (default: 0)"
    )


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "eval",
        help="evaluate a model: probes, fine-tuning, zero-shot scoring",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    recipes = parser.add_subparsers(dest="recipe", metavar="RECIPE", required=True)

    probe = recipes.add_parser(
        "probe",
        help="linear probe on frozen embeddings",
        description="Embed every row with the frozen model (mean of final hidden states), fit logistic "
        "regression (classification) or ridge regression (regression) on the train rows with the "
        "strength chosen on the valid rows, and report test accuracy/MCC/AUROC or Spearman/RMSE.",
    )
    _labelled(probe)
    probe.set_defaults(run=run_probe)

    ft = recipes.add_parser(
        "finetune",
        help="fine-tune the whole model with a head",
        description="Fine-tune the backbone and a head on mean-pooled hidden states with AdamW; early "
        "stopping and the restored checkpoint follow the valid metric (MCC or Spearman).",
    )
    _labelled(ft)
    ft.add_argument("--head", choices=("linear", "mlp"), default="linear", help="head on the pooled state")
    ft.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate (default: 1e-4)")
    ft.add_argument(
        "--lr-schedule",
        choices=("constant", "warmup-cosine"),
        default="constant",
        help="constant, or warmup-cosine: linear warm-up over the first 10%% of the planned steps "
        "(max epochs x batches), then cosine decay to 0 (default: constant)",
    )
    ft.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default: 0.01)")
    ft.add_argument("--batch-size", type=int, default=16, help="sequences per batch (default: 16)")
    ft.add_argument("--max-epochs", type=int, default=10, help="epochs at most (default: 10)")
    ft.add_argument("--max-steps", type=int, default=-1, help="optimizer steps at most (default: no limit)")
    ft.add_argument("--patience", type=int, default=3, help="epochs without improvement before stopping")
    ft.add_argument(
        "--head-init",
        choices=("random", "probe"),
        default="random",
        help="start the head at random, or as the linear probe of the frozen model (fitted on train, "
        "strength chosen on valid; linear head only): fine-tuning then starts where the probe ends",
    )
    ft.add_argument(
        "--rc-augment",
        action="store_true",
        help="DNA models: read each training sequence from a random strand, and average validation and "
        "test outputs over both strands (for labels that do not depend on the strand)",
    )
    ft.set_defaults(run=run_finetune)

    zs = recipes.add_parser(
        "zeroshot",
        help="zero-shot variant-effect scores of a mutational scan",
        description="Score every variant of a ProteinGym-style CSV (mutant,mutated_sequence,DMS_score) by "
        "log-likelihood(mutant) - log-likelihood(wild type): the whole-sequence likelihood for causal "
        "models, the masked marginal at the mutated positions for bidirectional ones. The wild type is "
        "reconstructed from the mutants and checked. Reports Spearman against DMS_score.",
    )
    _common(zs, "ProteinGym-style CSV: mutant (e.g. H24C or A1B:C3D), mutated_sequence, DMS_score")
    zs.set_defaults(run=run_zeroshot)

    from biolm.cli import eval_generation

    eval_generation.add_parser(recipes)


def _data_options(args: argparse.Namespace):
    from biolm.evaluation.run import DataOptions

    return DataOptions(
        sequence_column=args.sequence_column,
        label_column=args.label_column,
        split_column=args.split_column,
        task=args.task,
        split=args.split,
        fractions=args.fractions,
        split_seed=args.split_seed,
    )


def _print(out: Path, metrics: dict) -> None:
    from biolm.evaluation.report import format_metric

    for name, summary in metrics.items():
        print(f"{name}: {format_metric(summary)}")
    print(f"report: {out / 'report.md'}")


def run_probe(args: argparse.Namespace) -> int:
    from biolm.evaluation.run import run_probe as probe

    metrics = probe(
        args.model_dir,
        args.data,
        args.out,
        _data_options(args),
        args.seeds,
        device=args.device,
        progress=not args.no_progress,
    )
    _print(args.out, metrics)
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from biolm.errors import InputError
    from biolm.evaluation.run import run_finetune as finetune

    for name in ("batch_size", "max_epochs", "patience"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    metrics = finetune(
        args.model_dir,
        args.data,
        args.out,
        _data_options(args),
        args.seeds,
        device=args.device,
        progress=not args.no_progress,
        head=args.head,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        weight_decay=args.weight_decay,
        batch_size=args.batch_size,
        max_epochs=args.max_epochs,
        max_steps=args.max_steps,
        patience=args.patience,
        head_init=args.head_init,
        rc_augment=args.rc_augment,
    )
    _print(args.out, metrics)
    return 0


def run_zeroshot(args: argparse.Namespace) -> int:
    from biolm.evaluation.run import run_zeroshot as zeroshot

    metrics = zeroshot(args.model_dir, args.data, args.out, device=args.device, progress=not args.no_progress)
    _print(args.out, metrics)
    return 0
