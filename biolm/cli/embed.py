"""`biolm embed MODEL_DIR INPUT -o OUT.npy`: one vector per sequence."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "embed",
        help="embed sequences with a trained model",
        description=(
            "Embed every record of a FASTA file with a trained model: the mean of the model's final "
            "hidden states over the sequence. Writes OUT (.npy, [records, d_model], float32) and, beside "
            "it, OUT with the suffix .ids.txt listing the record ids in the same (input) order."
        ),
    )
    parser.add_argument("model_dir", type=Path, help="a model directory, e.g. runs/dna/model")
    parser.add_argument("input", type=Path, help="FASTA file")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .npy file")
    parser.add_argument("--batch-tokens", type=int, default=32768, help="tokens per batch (default 32768)")
    parser.add_argument(
        "--chunk-len", type=int, default=4096, help="positions per forward call (default 4096)"
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def ids_path(output: Path) -> Path:
    return output.with_suffix(".ids.txt")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from biolm.errors import InputError
    from biolm.inference.embed import embed_ids, tokenize_records
    from biolm.inference.io import read_fasta, write_atomic
    from biolm.models.io import load

    if args.output.suffix != ".npy":
        raise InputError(f"{args.output}: only .npy output is supported for now")
    model = load(args.model_dir, device=args.device)
    records = read_fasta(args.input)
    ids = tokenize_records(model, records, str(args.input))
    vectors = embed_ids(
        model, ids, batch_tokens=args.batch_tokens, chunk_len=args.chunk_len, progress=not args.no_progress
    )
    write_atomic(args.output, lambda tmp: np.save(open(tmp, "wb"), vectors))
    write_atomic(ids_path(args.output), lambda tmp: tmp.write_text("".join(f"{r}\n" for r, _ in records)))
    print(f"wrote {args.output} ({vectors.shape[0]} x {vectors.shape[1]}) and {ids_path(args.output)}")
    return 0
