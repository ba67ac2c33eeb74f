"""`biolm generate MODEL_DIR -n N --length L -o OUT.fasta`: sample new sequences."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "generate",
        help="sample sequences from a trained model",
        description="Sample sequences from a trained model; write them as FASTA (sample_1, sample_2, ...).",
    )
    parser.add_argument("model_dir", type=Path, help="a model directory, e.g. runs/dna/model")
    parser.add_argument("-n", "--num", type=int, default=5, help="number of sequences (default 5)")
    parser.add_argument("--length", type=int, default=200, help="tokens per sequence (default 200)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output FASTA file")
    parser.add_argument("--prompt", default="", help="sequence to continue (not included in the output)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    parser.add_argument("--top-k", type=int, default=None, help="sample from the k most likely tokens only")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from biolm.errors import InputError
    from biolm.inference.generate import sample
    from biolm.inference.io import write_atomic
    from biolm.models.io import load
    from biolm.tokenizers import TokenizationError

    if args.num < 1 or args.length < 1:
        raise InputError("--num and --length must be at least 1")
    if args.temperature <= 0:
        raise InputError("--temperature must be positive")
    model = load(args.model_dir, device=args.device)
    try:
        sequences = sample(
            model,
            args.num,
            args.length,
            prompt=args.prompt,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except TokenizationError as err:
        raise InputError(f"--prompt: {err}") from None
    text = "".join(f">sample_{i}\n{seq}\n" for i, seq in enumerate(sequences, start=1))
    write_atomic(args.output, lambda tmp: tmp.write_text(text))
    print(f"wrote {len(sequences)} sequences to {args.output}")
    return 0
