"""`biolm generate MODEL_DIR -n N -o OUT`: sample new sequences, unconditionally, in context, or infilled."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

DESCRIPTION = """\
Sample sequences from a trained causal model and write them to OUT.

Unconditional: each sample starts at <bos> (optionally followed by --prompt, which is not written to
OUT). DNA samples run to --max-new-tokens (DNA models are trained on genome windows without an end
token); protein and SMILES samples end at <eos>/<sep> or at the limit.

In context (--context FILE): a protein family (FASTA / A3M / Stockholm) or a molecule set (.smi / .csv
/ .tsv) is packed as the in-context training data is (`<bos> m1 <sep> m2 <sep> ...`, positions
restarting per member) up to --token-budget tokens, and each sample is a new member.

Infilling (--infill TEXT, protein models trained with task.objective=fim): residues with spans in square
brackets, [?] for a span of any length, [n] for exactly n residues, e.g. MKT[?]LLV[5]W; each sample is
the whole sequence with its spans filled.

Output: DNA and proteins as FASTA (sample_1, sample_2, ...), molecules as SMILES, one per line; `-o -`
writes them to standard output (the counts then go to stderr). Proteins are cleaned (empty and repeated
samples left out), molecules checked with RDKit, written in canonical form and de-duplicated (a context
molecule or sample of more than 1,000 atoms, or BIOLM_MAX_SMILES_ATOMS, is left out or counted invalid
without being given to RDKit); the counts of each stage are printed (with novelty against the context
file when there is one). Samples depend only on --seed, not on --batch-size."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "generate",
        help="sample sequences from a trained model",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_dir", type=Path, help="a model directory, e.g. runs/dna/model")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output FASTA or SMILES file (its folder is created; it may replace only an earlier FASTA / "
        "SMILES file, never an input); '-' or /dev/stdout writes to standard output, a FIFO or device "
        "is written into",
    )
    parser.add_argument("-n", "--num", type=int, default=5, help="number of samples, at least 1 (default 5)")
    parser.add_argument(
        "--max-new-tokens",
        "--length",
        dest="max_new_tokens",
        type=int,
        default=None,
        help="most tokens generated per sample, the end token included, at least 1 (default: DNA 200, "
        "protein 1024, SMILES 256); --length is an alias",
    )
    parser.add_argument("--prompt", default="", help="sequence to continue (not included in the output)")
    parser.add_argument("--context", type=Path, help="protein family or molecule set to generate a member of")
    parser.add_argument(
        "--token-budget",
        type=int,
        default=None,
        help="most tokens of the --context prompt (default 2048; keep it below the training length)",
    )
    parser.add_argument("--column", help="--context table: the SMILES column (default: found by name)")
    parser.add_argument(
        "--infill", metavar="TEXT", help="protein template with spans to fill, e.g. MKT[?]LLV[5]W"
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="sampling temperature, finite and >= 0 (default 1.0); 0: greedy, each token the most likely "
        "one, so all samples are the same (proteins and molecules are then de-duplicated to one), --seed "
        "changes them only through the --context members it draws, and --top-k, --top-p and --min-p have "
        "no effect",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=None,
        help="sample from the k most likely tokens only, k >= 1 (tokens tied with the k-th are kept; k at "
        "or above the vocabulary size: no filter)",
    )
    parser.add_argument(
        "--top-p", type=float, default=None, help="nucleus sampling threshold in (0, 1]; 1: no filter"
    )
    parser.add_argument(
        "--min-p",
        type=float,
        default=None,
        help="drop tokens below min-p times the best token's probability, min-p in [0, 1] (0: no filter, "
        "1: the most likely token(s) only)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed, >= 0 (default 0)")
    parser.add_argument("--batch-size", type=int, default=64, help="samples decoded together (default 64)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    # generate(model, n, ...) is given -n/--num; the other arguments share their flags' names.
    parser.set_defaults(run=run, argument_flags={"n": "--num"})


def run(args: argparse.Namespace) -> int:
    from biolm.inference.arguments import check_generate_arguments

    # Before torch is imported: a bad flag is refused at once. Errors name the flags (biolm.cli.main).
    check_generate_arguments(
        args.num, args.max_new_tokens, args.batch_size, args.temperature, args.top_k, args.top_p,
        args.min_p, args.seed, args.prompt, args.context, args.infill, args.token_budget, args.column,
    )  # fmt: skip
    from biolm.domains import domain_of
    from biolm.inference.generate import generate, write_samples
    from biolm.io.outputs import Inputs, check_file_output, is_stdout
    from biolm.models.io import load

    model = load(args.model_dir, device=args.device)
    domain = domain_of(model.tokenizer)
    # Before sampling: the output may not be an input (the model's files, --context), a directory or
    # a file of another format.
    check_file_output(args.output, domain.output, Inputs.of(args.model_dir, args.context))
    # With the samples on standard output, what is said about them goes to stderr.
    say = functools.partial(print, file=sys.stderr if is_stdout(args.output) else sys.stdout)
    result = generate(
        model,
        args.num,
        max_new_tokens=args.max_new_tokens,
        prompt=args.prompt,
        context=args.context,
        token_budget=args.token_budget,
        column=args.column,
        infill=args.infill,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        seed=args.seed,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    if result.context is not None:
        say(result.context.describe())
    if result.unfinished:
        total = len(result.raw) + result.unfinished
        say(
            f"{result.unfinished:,} of {total:,} samples did not close every span within "
            f"--max-new-tokens {result.max_new_tokens} and are left out"
        )
    if result.counts is not None:
        from biolm.inference.postprocess import format_counts

        say(format_counts(result.counts))
    write_samples(result, args.output)
    say(f"wrote {len(result.sequences):,} {domain.sample_noun} to {args.output}")
    return 0
