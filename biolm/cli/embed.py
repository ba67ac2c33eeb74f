"""`biolm embed MODEL_DIR INPUT -o OUT`: embeddings of every record, with a manifest of ids."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

DESCRIPTION = """\
Embed every record of INPUT with a trained model and write OUT, chosen by its extension:
.npy or .parquet (one row per record), .h5 or .pt (also per-token). Beside OUT: OUT.manifest.tsv
(row, id, header: the record of each output row, in input order; ids are made file-name safe and
unique with _2, _3, ...) and OUT.ids.txt (the ids alone).

INPUT: FASTA (DNA or protein), A3M / Stockholm (gaps removed, inserts upper-cased), SMILES (.smi,
one per line, optional name after it), CSV / TSV (a header row; the sequence or SMILES column and the
id column are found by name, e.g. `sequence`, `smiles`, `id`, or given with --column / --id-column).
A trailing .gz is fine. SMILES are checked with RDKit and embedded in canonical form; one of more than
1,000 atoms (or 16,000 characters) is refused before RDKit reads it, as RDKit can crash on very large
molecules (the environment variable BIOLM_MAX_SMILES_ATOMS sets another bound).

Layers are numbered as in ESM: 0 is the token embedding, i the output of block i, -1 the final
(normalised) hidden state. With several layers, .npy holds [records, layers, d_model] (layers in the
order given), .parquet a column layer_<i> per layer, .h5 a dataset layer_<i> per layer, .pt a dict.
Per-token .h5 output stores each layer's tokens back to back with `offsets` [records + 1].
Long sequences are read in chunks with the recurrent state carried over (causal models), so memory
does not grow with sequence length."""

POOL_HELP = (
    "mean: mean over the sequence's positions (default); last: the last position, which in a causal "
    "model is the only one that has read the whole sequence; bos: the <bos> position, a CLS-like "
    "summary for bidirectional / RC models only (in a causal model it has seen nothing: an error); "
    "per-token: one vector per token (.h5 or .pt output)"
)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "embed",
        help="embed sequences with a trained model",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # argparse takes "-1,-2" for an option name; a layer list is a value (this command has no option
    # that looks like a negative number, so nothing is shadowed).
    parser._negative_number_matcher = re.compile(r"^-\d+(,-?\d+)*$")
    parser.add_argument("model_dir", type=Path, help="a model directory, e.g. runs/dna/model")
    parser.add_argument("input", type=Path, help="FASTA, A3M, Stockholm, SMILES, CSV or TSV file")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output .npy, .parquet, .h5 or .pt (its folder is created; it and its side files may replace "
        "only an earlier embedding set, never an input or another file)",
    )
    parser.add_argument(
        "--pool", choices=("mean", "last", "bos", "per-token"), default="mean", help=POOL_HELP
    )
    parser.add_argument(
        "--layers",
        default="-1",
        help="layer(s): -1 (final, default), -1,-2, 0,3 or all",
    )
    parser.add_argument(
        "--rc-average",
        action="store_true",
        help="DNA: average each sequence's embedding with its reverse complement's (per token: same base)",
    )
    parser.add_argument("--column", help="table column with the sequences / SMILES (default: by name)")
    parser.add_argument("--id-column", help="table column with the record ids (default: by name, else line)")
    parser.add_argument("--batch-tokens", type=int, default=32768, help="tokens per batch (default 32768)")
    parser.add_argument(
        "--chunk-len", type=int, default=4096, help="positions per forward call (default 4096)"
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from biolm.inference.embed import embed
    from biolm.inference.writers import check_embedding_outputs, write_embeddings
    from biolm.io.outputs import Inputs
    from biolm.models.io import load

    # Before loading anything: OUT and its side files may not be an input, a directory, a device or
    # another kind of file.
    check_embedding_outputs(args.output, args.pool, Inputs.of(args.model_dir, args.input))
    layers: str | int = int(args.layers) if args.layers.strip().lstrip("-").isdigit() else args.layers
    model = load(args.model_dir, device=args.device)
    result = embed(
        model,
        args.input,
        pool=args.pool,
        layers=layers,
        rc_average=args.rc_average,
        column=args.column,
        id_column=args.id_column,
        batch_tokens=args.batch_tokens,
        chunk_len=args.chunk_len,
        progress=not args.no_progress,
    )
    written = write_embeddings(
        args.output, result.vectors, result.ids, result.headers, result.layers, args.pool
    )
    layers_note = "" if len(result.layers) == 1 else f", layers {','.join(map(str, result.layers))}"
    print(f"wrote {len(result)} records ({args.pool}{layers_note}) to {', '.join(map(str, written))}")
    return 0
