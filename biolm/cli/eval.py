"""`biolm eval RECIPE MODEL_DIR DATA --out DIR`: evaluate a trained model and write a report.

Each recipe's flags map onto its options dataclass (`biolm.evaluation.options`): a flag's dest is the
field's name, its argparse default None, and only the flags a user gave are passed on, so every default
lives in the dataclass; `--help` quotes it from there (`default`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from biolm.cli.options import OUT_HELP, default, given, listed
from biolm.evaluation.options import (
    DEFAULT_SEEDS,
    SCORES,
    BaselineOptions,
    ContextOptions,
    DataOptions,
    FinetuneOptions,
)

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


ZEROSHOT_DESCRIPTION = """\
Score every variant of a ProteinGym-style CSV (mutant,mutated_sequence,DMS_score) by
log-likelihood(mutant) - log-likelihood(wild type): the whole-sequence likelihood for causal models,
the masked marginal at the mutated positions for bidirectional ones. The wild type is reconstructed
from the mutants and checked. Reports Spearman against DMS_score (and AUROC with DMS_score_bin).

With --context MSA (A3M, aligned FASTA or Stockholm; its first record is the wild type) a causal model
first reads homologs of the wild type, gaps removed, drawn with a seed up to --context-tokens, laid out
as in in-context training (<bos> h1 <sep> ... hk <sep>). Each context is read once, in constant memory,
and its state reused for every variant; replicates draw other homologs and are averaged.

With an MSA (--context or --msa) the report also gives the site-independent model of that MSA
(per-column amino-acid frequencies of the query's match columns, sequence weights, pseudo-counts) and
the ensemble w x model + (1 - w) x site-independent, and scores.tsv holds every variant's scores.

Examples:
  biolm eval zeroshot runs/protein/model BLAT_ECOLX_Jacquier_2013.csv --out reports/blat
  biolm eval zeroshot runs/protein_context/model BLAT_ECOLX_Jacquier_2013.csv \\
      --context BLAT_ECOLX_ColabFold_2202.a3m.gz --replicates 4 --out reports/blat_context
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
    parser.add_argument("--out", type=Path, required=True, help=OUT_HELP)
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
        help="auto: classification for text labels or at most 10 distinct integers, else regression "
        f"(default: {default(DataOptions, 'task')})",
    )
    parser.add_argument(
        "--split",
        choices=("auto", "column", "random", "scaffold", "scaffold-balanced"),
        help="auto: the file's split column if any, else random; scaffold: Bemis-Murcko groups, largest "
        "first, so test holds the rarest scaffolds (DeepChem/MoleculeNet, deterministic); "
        "scaffold-balanced: Bemis-Murcko groups in a seeded random order (chemprop); both SMILES only "
        f"(default: {default(DataOptions, 'split')})",
    )
    parser.add_argument(
        "--fractions",
        type=_fractions,
        metavar="TRAIN,VALID,TEST",
        help="split fractions for random/scaffold splits, and the valid share carved from a column "
        f"split without validation rows (default: {listed(default(DataOptions, 'fractions'))})",
    )
    parser.add_argument(
        "--split-seed",
        type=int,
        help="seed of the random and scaffold-balanced splits "
        f"(default: {default(DataOptions, 'split_seed')})",
    )
    parser.add_argument(
        "--seeds",
        type=_seeds,
        help=f"comma-separated seeds; metrics are mean ± sd (default: {listed(DEFAULT_SEEDS)})",
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
    ft.add_argument(
        "--head",
        choices=("linear", "mlp"),
        help=f"head on the pooled state (default: {default(FinetuneOptions, 'head')})",
    )
    ft.add_argument(
        "--lr", type=float, help=f"AdamW learning rate (default: {default(FinetuneOptions, 'lr'):g})"
    )
    ft.add_argument(
        "--lr-schedule",
        choices=("constant", "warmup-cosine"),
        help="constant, or warmup-cosine: linear warm-up over the first 10%% of the planned steps "
        "(max epochs x batches), then cosine decay to 0 "
        f"(default: {default(FinetuneOptions, 'lr_schedule')})",
    )
    ft.add_argument(
        "--weight-decay",
        type=float,
        help=f"AdamW weight decay (default: {default(FinetuneOptions, 'weight_decay')})",
    )
    ft.add_argument(
        "--batch-size",
        type=int,
        help=f"sequences per batch (default: {default(FinetuneOptions, 'batch_size')})",
    )
    ft.add_argument(
        "--max-epochs", type=int, help=f"epochs at most (default: {default(FinetuneOptions, 'max_epochs')})"
    )
    ft.add_argument(
        "--max-steps",
        type=int,
        help=f"optimizer steps at most (default: {default(FinetuneOptions, 'max_steps')}, no limit)",
    )
    ft.add_argument(
        "--patience",
        type=int,
        help=f"epochs without improvement before stopping (default: {default(FinetuneOptions, 'patience')})",
    )
    ft.add_argument(
        "--head-init",
        choices=("random", "probe"),
        help="start the head at random, or as the linear probe of the frozen model (fitted on train, "
        "strength chosen on valid; linear head only): fine-tuning then starts where the probe ends "
        f"(default: {default(FinetuneOptions, 'head_init')})",
    )
    ft.add_argument(
        "--rc-augment",
        action="store_true",
        default=None,  # not given: FinetuneOptions' default
        help="DNA models: read each training sequence from a random strand, and average validation and "
        "test outputs over both strands (for labels that do not depend on the strand)",
    )
    ft.set_defaults(run=run_finetune)

    zs = recipes.add_parser(
        "zeroshot",
        help="zero-shot variant-effect scores of a mutational scan",
        description=ZEROSHOT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(zs, "ProteinGym-style CSV: mutant (e.g. H24C or A1B:C3D), mutated_sequence, DMS_score")
    _zeroshot_options(zs)
    # ContextOptions' name where it differs from the flag's dest (BaselineOptions' dests are its fields).
    zs.set_defaults(
        run=run_zeroshot, argument_flags={"token_budget": "--context-tokens", "seed": "--context-seed"}
    )

    from biolm.cli import eval_generation

    eval_generation.add_parser(recipes)


def _zeroshot_options(parser: argparse.ArgumentParser) -> None:
    context = parser.add_argument_group("homolog context (causal protein models)")
    context.add_argument(
        "--context", type=Path, metavar="MSA", help="score every variant after homologs of this MSA"
    )
    context.add_argument(
        "--context-tokens",
        dest="token_budget",
        metavar="CONTEXT_TOKENS",
        type=int,
        help="most tokens of one context, <bos> and <sep>s included (default: "
        f"{default(ContextOptions, 'token_budget')}, the training length of the in-context recipes; a "
        "recurrent model reads more in constant memory)",
    )
    context.add_argument(
        "--replicates",
        type=int,
        help="contexts drawn with seeds S, S+1, ...; scores averaged "
        f"(default: {default(ContextOptions, 'replicates')})",
    )
    context.add_argument(
        "--context-seed",
        dest="seed",
        metavar="CONTEXT_SEED",
        type=int,
        help=f"seed S of the first context (default: {default(ContextOptions, 'seed')})",
    )
    context.add_argument(
        "--max-identity",
        type=float,
        help="leave out homologs at least this identical to the wild type, e.g. 0.95 (copies of the wild "
        "type are always left out)",
    )
    context.add_argument("--max-members", type=int, help="at most this many homologs per context")
    context.add_argument(
        "--score",
        choices=SCORES,
        help="causal: log-likelihood ratio of the whole variant after the context; fim: for models "
        "trained with fill-in-the-middle, the mutated position masked, log p(mut) - log p(wt) there "
        f"(default: {default(ContextOptions, 'score')})",
    )
    baseline = parser.add_argument_group("site-independent baseline and ensemble")
    baseline.add_argument(
        "--msa", type=Path, help="MSA of the site-independent baseline (default: the --context MSA)"
    )
    baseline.add_argument(
        "--weight-identity",
        type=float,
        dest="identity",
        metavar="WEIGHT_IDENTITY",
        help="sequence weights: 1 / neighbours at least this identical "
        f"(default: {default(BaselineOptions, 'identity')})",
    )
    baseline.add_argument(
        "--pseudocount",
        type=float,
        help=f"pseudo-count per amino acid and column (default: {default(BaselineOptions, 'pseudocount')})",
    )
    baseline.add_argument(
        "--ensemble-weight",
        type=float,
        help="w of the ensemble w x model + (1 - w) x site-independent "
        f"(default: {default(BaselineOptions, 'ensemble_weight')})",
    )


def _seeds_given(args: argparse.Namespace) -> dict:
    return {} if args.seeds is None else {"seeds": args.seeds}


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
        DataOptions(**given(args, DataOptions)),
        **_seeds_given(args),
        device=args.device,
        progress=not args.no_progress,
    )
    _print(args.out, metrics)
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    from biolm.evaluation.run import run_finetune as finetune

    training = FinetuneOptions(**given(args, FinetuneOptions))  # checked before anything is read
    metrics = finetune(
        args.model_dir,
        args.data,
        args.out,
        DataOptions(**given(args, DataOptions)),
        **_seeds_given(args),
        training=training,
        device=args.device,
        progress=not args.no_progress,
    )
    _print(args.out, metrics)
    return 0


def run_zeroshot(args: argparse.Namespace) -> int:
    from biolm.errors import InputError
    from biolm.evaluation.run import run_zeroshot as zeroshot

    baseline = BaselineOptions(**given(args, BaselineOptions))
    context = None
    if args.context is not None:
        context = ContextOptions(args.context, **given(args, ContextOptions))
    elif args.score is not None or args.max_identity is not None or args.max_members is not None:
        raise InputError("--score, --max-identity and --max-members apply to scoring with --context MSA")
    metrics = zeroshot(
        args.model_dir,
        args.data,
        args.out,
        device=args.device,
        progress=not args.no_progress,
        context=context,
        baseline=baseline,
    )
    _print(args.out, metrics)
    return 0
