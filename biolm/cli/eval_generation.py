"""`biolm eval generation MODEL_DIR [SETS ...] --out DIR`: how well a model generates, in context."""

from __future__ import annotations

import argparse
from pathlib import Path

from biolm.cli.options import OUT_HELP, default, given, listed
from biolm.evaluation.options import GenerationOptions, MoleculeGenerationOptions, ProteinGenerationOptions

# Shorter names for the help texts, which quote each default from its options class.
_SHARED, _PROTEIN, _MOLECULE = GenerationOptions, ProteinGenerationOptions, MoleculeGenerationOptions

DESCRIPTION = """\
Evaluate generation and write a report directory (report.md, PNG plots, metrics.json, the samples),
replaced as a whole when the run completes. What is measured follows the model's kind.

Protein model, DATA = family files (FASTA / A3M / Stockholm, .gz fine) or directories of them:
  - in-context gain: perplexity per residue of held-out members of each family after k = 0, 1, 2, ...
    other members of the family (--context-sizes, --held-out, --draws);
  - samples after prompts of family members (--num-samples, --sample-context, --samples-per-prompt):
    hits of the family's profile HMM (--hmm-dir, Pfam gathering threshold; pyhmmer), identity to the
    nearest member of the prompt (novelty), lengths; the held-out natural members measured alike.

SMILES model, DATA = molecule set files (.smi / .csv / .tsv) or directories, optional:
  - unconditional samples (--unconditional) with the MOSES metrics: validity, uniqueness, novelty
    (--train), internal diversity, FCD / SNN / fragment / scaffold similarity to --test (fcd_torch);
  - per set: in-context gain, and samples after prompts of set members compared with the set's
    held-out members (nearest-neighbour Tanimoto similarity against unconditional samples, FCD).

Examples:
  biolm eval generation runs/protein/model ../shared/data/protein/pfam_seed \\
      --hmm-dir ../shared/data/protein/pfam_hmm --out reports/families
  biolm eval generation runs/chem/model held_out_sets/ --out reports/sets
  biolm eval generation runs/moses/model --unconditional 10000 --train moses/train.csv.gz \\
      --test moses/test.csv.gz --out reports/moses
"""


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 0,1,4,16, got {text!r}"
        ) from None
    if not sizes or sizes[0] < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative context sizes, got {text!r}")
    return sizes


def add_parser(recipes: argparse._SubParsersAction) -> None:
    """The `generation` recipe of `biolm eval`."""
    p = recipes.add_parser(
        "generation",
        help="in-context gain and generated samples (proteins: HMM hits, novelty; molecules: MOSES)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model_dir", type=Path, help="a causal protein or SMILES model directory")
    p.add_argument("data", type=Path, nargs="*", help="family / molecule set files or directories of them")
    p.add_argument("--out", type=Path, required=True, help=OUT_HELP)
    p.add_argument(
        "--context-sizes",
        dest="sizes",
        type=_sizes,
        metavar="K,K,...",
        help=f"context members k of the gain curve (default: {listed(default(_SHARED, 'sizes'))})",
    )
    p.add_argument(
        "--held-out",
        type=int,
        help="members held out per set, at most half of it "
        f"(default: {default(_PROTEIN, 'held_out')} per protein family, "
        f"{default(_MOLECULE, 'held_out')} per molecule set)",
    )
    p.add_argument(
        "--draws",
        type=int,
        help=f"context orders per set for the gain curve (default: {default(_SHARED, 'draws')})",
    )
    p.add_argument(
        "-n",
        "--num-samples",
        type=int,
        help=f"samples per set (default: {default(_PROTEIN, 'num_samples')} per protein family, "
        f"{default(_MOLECULE, 'num_samples')} per molecule set)",
    )
    p.add_argument(
        "--sample-context",
        type=int,
        help=f"most members in a sampling prompt (default: {default(_PROTEIN, 'sample_context')} proteins, "
        f"{default(_MOLECULE, 'sample_context')} molecules)",
    )
    p.add_argument(
        "--samples-per-prompt",
        type=int,
        help=f"samples from each prompt (default: {default(_SHARED, 'samples_per_prompt')})",
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help="most tokens per sample (default: twice the family's longest member, at least 32, for "
        f"proteins, {default(_MOLECULE, 'max_new_tokens')} for SMILES)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        help=f"sampling temperature, >= 0 (default: {default(_SHARED, 'temperature')}; 0: greedy)",
    )
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=float, help="nucleus sampling: the smallest set of tokens with this mass")
    p.add_argument(
        "--min-p", type=float, help="drop tokens below this fraction of the best one's probability"
    )
    p.add_argument(
        "--seed",
        type=int,
        help=f"seeds the splits, prompts and samples (default: {default(_SHARED, 'seed')})",
    )
    p.add_argument("--device", default="cpu", help="torch device for the model (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    protein = p.add_argument_group("proteins")
    protein.add_argument(
        "--hmm-dir",
        type=Path,
        help="profile HMMs named after the families "
        "(PF00096_seed.fasta -> PF00096.hmm); without it no HMM hits are measured",
    )
    chem = p.add_argument_group("molecules")
    chem.add_argument(
        "--unconditional",
        dest="num_unconditional",
        type=int,
        metavar="UNCONDITIONAL",
        help=f"unconditional samples (default: {default(_MOLECULE, 'num_unconditional')})",
    )
    chem.add_argument("--train", type=Path, help="training molecules, for the novelty of the samples")
    chem.add_argument("--test", type=Path, help="reference molecules for FCD, SNN, Frag, Scaf, properties")
    chem.add_argument(
        "--max-reference",
        type=int,
        help="a seeded sample of at most this many --test molecules "
        f"(default: {default(_MOLECULE, 'max_reference')})",
    )
    chem.add_argument("--column", help="SMILES column of CSV/TSV files (default: auto-detected)")
    chem.add_argument(
        "--token-budget",
        type=int,
        help=f"most tokens of a molecule prompt (default: {default(_MOLECULE, 'token_budget')})",
    )
    # The flags' dests are the options' field names; a reader's own name for --column is mapped here.
    p.set_defaults(run=run_generation, argument_flags={"smiles_column": "--column"})


def run_generation(args: argparse.Namespace) -> int:
    from biolm.domains import domain_of, get_domain
    from biolm.errors import InputError
    from biolm.evaluation.report import check_report_directory
    from biolm.models.io import load

    # Every recipe's options are made, and so checked, before the model is loaded: a bad flag is refused
    # before torch is paid for, whichever domain the model turns out to be. A flag of another domain's
    # recipe is ignored by the run.
    options = {name: cls(**given(args, cls)) for name, (cls, _) in RECIPES.items()}
    check_report_directory(args.out, args.model_dir, *args.data, args.hmm_dir, args.train, args.test)
    model = load(args.model_dir, device=args.device)
    domain = domain_of(model.tokenizer)
    if domain.name not in RECIPES:
        able = " and ".join(get_domain(name).title for name in RECIPES)
        raise InputError(f"{args.model_dir}: generation is evaluated for {able} models, not {domain.title}")
    _, recipe = RECIPES[domain.name]
    recipe(args, options[domain.name], model)
    print(f"report: {args.out / 'report.md'}")
    return 0


def _run_protein(args: argparse.Namespace, options: ProteinGenerationOptions, model) -> None:
    from biolm.errors import InputError
    from biolm.evaluation.protein_generation import run_protein_generation

    if not args.data:
        raise InputError("a protein model needs family files (DATA) to evaluate in-context generation")
    common = dict(device=args.device, progress=not args.no_progress, model=model)
    _print_protein(run_protein_generation(args.model_dir, args.data, args.out, options, **common))


def _run_molecules(args: argparse.Namespace, options: MoleculeGenerationOptions, model) -> None:
    from biolm.evaluation.molecule_generation import run_molecule_generation

    common = dict(device=args.device, progress=not args.no_progress, model=model)
    _print_molecules(run_molecule_generation(args.model_dir, args.data, args.out, options, **common))


def _print_protein(result: dict) -> None:
    curve, totals, targets = result["gain_curve"], result["all"], result["targets"]
    pooled = curve.pooled_perplexity()
    print(
        "pooled perplexity by context size: "
        + ", ".join(f"k={k}: {v:.2f}" for k, v in zip(curve.sizes, pooled, strict=True))
    )
    if "ppl32_over_ppl0" in targets:
        print(f"perplexity at 32 / at 0 context members: {targets['ppl32_over_ppl0']:.3f}")
    hits = totals["hmm_hit"]
    if hits is not None:
        print(
            f"samples hitting the family HMM: {100 * hits:.1f} %; hitting it under 90 % identity to every "
            f"context member: {100 * totals['hmm_hit_novel']:.1f} %"
        )


def _print_molecules(result: dict) -> None:
    print("unconditional: " + ", ".join(f"{k} {v:.3f}" for k, v in result["moses"].items()))
    for name, s in result["sets"].items():
        print(
            f"{name}: NN similarity to held-out conditioned {s['nn_similarity_conditioned']:.3f} vs "
            f"unconditional {s['nn_similarity_unconditional']:.3f} (p {s['mann_whitney_p']:.1e})"
        )


# The generation benchmark of each domain that has one: its options and how the CLI runs it.
RECIPES = {
    "protein": (ProteinGenerationOptions, _run_protein),
    "chem": (MoleculeGenerationOptions, _run_molecules),
}
