"""`biolm train DOMAIN [key=value ...]`: train a language model from a packaged config."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DESCRIPTION = """\
Train a language model. With no other argument, `biolm train dna` trains a small mLSTM model on the
built-in C. diphtheriae genome (about ten minutes on a laptop CPU) and writes runs/dna/: the
resolved config, metrics.csv, checkpoints and the exported model (runs/dna/model).
`biolm train protein` does the same on a built-in bacterial proteome (runs/protein/), and
`biolm train chem` on SMILES (runs/chem/).

Any config key can be overridden as key=value, e.g.
  biolm train dna data.path=my_genome.fa trainer.max_steps=5000 model.d_model=256
  biolm train dna --config my.yaml name=exp1
  biolm train protein data.path=families/ data.packing=sets data.loss_after_members=1
  biolm train protein task.objective=fim task.fim_max_spans=3
Start from a trained model's weights (fine-tuning; its model settings are kept):
  biolm train chem init_from=runs/chem/model data.path=sets/ data.packing=sets
Continue a stopped or killed run from its newest good checkpoint, exactly where it stopped (extra
overrides apply on top of its saved config):
  biolm train dna --resume runs/dna
Several GPUs or machines (data-parallel through Lightning; see the README for torchrun and SLURM):
  biolm train dna trainer.devices=4 trainer.strategy=ddp
A step with a NaN/inf loss changes no weight and is logged; trainer.on_nonfinite=skip|halt decides
what follows (trainer.max_nonfinite_skips caps consecutive skips).
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        help="train a language model",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # biolm.domains imports neither torch nor RDKit: `biolm --help` stays fast.
    from biolm import domains

    parser.add_argument(
        "domain",
        type=_domain_name,
        metavar="{" + ",".join(domains.names()) + "}",
        help="which kind of sequences: " + ", ".join(f"{d.name} ({d.title})" for d in domains.registered()),
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (dotted keys)")
    parser.add_argument("--config", type=Path, help="a YAML config instead of the packaged default")
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue this run from its newest good checkpoint (last.ckpt or on_exception.ckpt)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    # Readers name their arguments; a training run sets them through config keys.
    parser.set_defaults(run=run, argument_flags={"smiles_column": "data.smiles_column"})


def _domain_name(text: str) -> str:
    """A domain's name from what the user typed (its name or an alias such as `smiles`)."""
    from biolm.domains import get_domain
    from biolm.errors import InputError

    try:
        return get_domain(text).name
    except InputError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def run(args: argparse.Namespace) -> int:
    from biolm.configs import load_config, packaged_config, to_train_config
    from biolm.errors import InputError

    # Only a missing file is told here: anything else there (a directory, a FIFO, /dev/zero) is named by
    # the config reader, which reads only regular files of bounded size.
    if args.resume is not None:
        if args.config is not None:
            raise InputError("--resume takes the config saved in the run directory; drop --config")
        config_path = args.resume / "config.yaml"
        if not os.path.lexists(config_path):
            raise InputError(f"{args.resume}: not a run directory (no config.yaml)")
    else:
        config_path = args.config or packaged_config(args.domain)
        if not os.path.lexists(config_path):
            raise InputError(f"{config_path}: config file not found")
    config = load_config(config_path, args.overrides)
    to_train_config(config)  # every value checked before Lightning is imported (seconds)
    from biolm.data.ranks import is_rank_zero
    from biolm.tasks.runner import format_summary, train

    summary = train(config, args.domain, resume_dir=args.resume, progress=not args.no_progress)
    if is_rank_zero():
        print(format_summary(summary))
    return 0
