"""`biolm convert`: published checkpoints (Chem-xLSTM, xlstm 1.x, ...) read into ordinary biolm model
directories that every verb takes.

A checkpoint is read as data (torch's weights-only unpickler with an allowlist; JSON and YAML side
files bounded), its format told by its files, its blocks mapped onto biolm's own blocks and options,
its vocabulary onto a biolm tokenizer that keeps the reference's token meaning. Nothing is written
unless the whole conversion succeeds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from biolm.errors import InputError

TOKENIZER_KINDS = ("dna", "protein", "smiles")


@dataclass(frozen=True)
class Format:
    """A published checkpoint format.

    Attributes:
        name: as users know it ("Chem-xLSTM").
        files: what a checkpoint of the format holds, for messages.
        detect: whether a path is a checkpoint of the format.
        read: the biolm model and tokenizer of a checkpoint (given `--tokenizer`), or None for a format
            biolm recognises but does not convert yet.
    """

    name: str
    files: str
    detect: Callable[[Path], bool]
    read: Callable | None


def _formats() -> list[Format]:
    from biolm.convert import chem_xlstm, dna_xlstm, prot_xlstm, transformers_xlstm, xlstm1

    return [
        Format(chem_xlstm.NAME, "init_arguments.json + model.pt", chem_xlstm.detect, chem_xlstm.read),
        Format(xlstm1.NAME, "config.yaml (xLSTMLMModelConfig) + model.pt", xlstm1.detect, xlstm1.read),
        Format(
            transformers_xlstm.NAME,
            "config.json (model_type xlstm) + model.safetensors",
            transformers_xlstm.detect,
            transformers_xlstm.read,
        ),
        Format(prot_xlstm.NAME, "config.json + pytorch_model.bin", prot_xlstm.detect, prot_xlstm.read),
        Format(dna_xlstm.NAME, "model_config.json + checkpoints/**/*.ckpt", dna_xlstm.detect, dna_xlstm.read),
    ]


def detect_format(source: str | os.PathLike) -> Format:
    """The format of the checkpoint at `source`.

    Raises:
        InputError: a missing path, or files of no known format (the known ones listed).
    """
    source = Path(source)
    if not source.exists():
        raise InputError(f"{source}: no such checkpoint directory")
    formats = _formats()
    for fmt in formats:
        if fmt.detect(source):
            return fmt
    known = "; ".join(f"{f.name} ({f.files})" for f in formats)
    raise InputError(f"{source}: not a checkpoint of a format biolm converts; known formats: {known}")


def convert(source: str | os.PathLike, out: str | os.PathLike, *, tokenizer: str | None = None) -> Path:
    """Convert the published checkpoint at `source` into the biolm model directory `out`.

    Args:
        source: the checkpoint directory as its code base writes it.
        out: the model directory to write (an earlier model directory there is replaced as a whole;
            anything else is refused, see `biolm.io.outputs`).
        tokenizer: "dna", "protein" or "smiles": the biolm tokenizer whose ids a checkpoint without a
            vocabulary of its own uses (xlstm 1.x).

    Returns:
        `out`, loadable with `biolm.load`.

    Raises:
        InputError: an unknown or damaged checkpoint, a pickle asking for code, settings that disagree
            with the weights, or a model biolm cannot represent: one line naming the file (and key).
        OutputError: `out` cannot be written or holds something else; nothing is written.
    """
    from biolm.io.outputs import Inputs, check_directory_output
    from biolm.models.io import MODEL_DIRECTORY, save

    source, out = Path(source), Path(out)
    if tokenizer is not None and tokenizer not in TOKENIZER_KINDS:
        from biolm.errors import ArgumentError

        raise ArgumentError(
            f"{{tokenizer}} must be one of {', '.join(TOKENIZER_KINDS)}, got {tokenizer!r}", "tokenizer"
        )
    fmt = detect_format(source)
    if fmt.read is None:
        raise InputError(f"{source}: a {fmt.name} checkpoint; this biolm does not convert {fmt.name} yet")
    # Before the work: the output may not be the checkpoint itself nor a directory of other files.
    check_directory_output(out, MODEL_DIRECTORY, Inputs.of(source))
    model, converted_tokenizer = fmt.read(source, tokenizer)
    save(model, converted_tokenizer, out)
    return out
