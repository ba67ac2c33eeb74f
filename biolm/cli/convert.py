"""`biolm convert SRC -o MODEL_DIR`: a published checkpoint into a biolm model directory."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Convert a published checkpoint into a biolm model directory that every verb takes (embed, generate,
eval, info). The format is told by the checkpoint's files:
  Chem-xLSTM    init_arguments.json + model.pt (ml-jku/Chem-xLSTM); its SMILES vocabulary and
                tokenization rule are kept
  xlstm 1.x     config.yaml (xLSTMLMModelConfig) + model.pt (NX-AI xlstm), mLSTM and sLSTM
                blocks; give --tokenizer, the biolm tokenizer its ids are
  transformers  config.json (model_type xlstm) + model.safetensors (or shards): xLSTMForCausalLM,
                the xLSTM-7B design; its tokenizer.json tells the biolm tokenizer, else --tokenizer
  Prot-xLSTM    config.json + pytorch_model.bin (ml-jku/Prot-xLSTM): RoPE'd mLSTM blocks, its 38 ids
                on biolm's protein tokenizer with five FIM sentinels (<cls> is <bos>)
  DNA-xLSTM     model_config.json + checkpoints/**/*.ckpt (ml-jku/DNA-xLSTM; SRC may be the .ckpt);
                PS (rcps) models are refused: the reference's are not RC-equivariant

The checkpoint is read as data: pickles through torch's weights-only unpickler (a pickle that asks
for code is refused), never imported or run. Nothing is written unless the conversion succeeds; an
earlier model directory at MODEL_DIR is replaced as a whole, anything else there is refused.

  biolm convert chem_xlstm_chembl/ -o models/chem-xlstm
  biolm generate models/chem-xlstm -n 100 -o new.smi
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "convert",
        help="convert a published checkpoint into a biolm model directory",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", type=Path, metavar="SRC", help="the checkpoint directory")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="MODEL_DIR", help="the model directory to write"
    )
    parser.add_argument(
        "--tokenizer",
        choices=("dna", "protein", "smiles"),
        help="the biolm tokenizer whose ids the checkpoint uses, for formats without a vocabulary "
        "(xlstm 1.x)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from biolm.convert import convert, detect_format

    fmt = detect_format(args.source)
    out = convert(args.source, args.output, tokenizer=args.tokenizer)
    print(f"converted the {fmt.name} checkpoint {args.source} into the model directory {out}")
    return 0
