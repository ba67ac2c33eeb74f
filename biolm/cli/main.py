"""The `biolm` command: one sub-command per module in this package."""

from __future__ import annotations

import argparse
import logging
import sys

from biolm import __version__
from biolm.cli import embed, generate, info, train
from biolm.cli import eval as eval_command

COMMANDS = {"train": train, "embed": embed, "generate": generate, "info": info, "eval": eval_command}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="biolm",
        description="xLSTM language models for DNA, proteins and small molecules.",
        epilog="Run `biolm COMMAND --help` for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"biolm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS.values():
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    # `key=value` overrides may come after options (`biolm train dna --resume RUN a=1`), which a plain
    # nargs="*" positional does not allow; collect them from the leftovers instead.
    args, extra = parser.parse_known_args(argv)
    is_override = [args.command == "train" and "=" in item and not item.startswith("-") for item in extra]
    unknown = [item for item, ok in zip(extra, is_override, strict=True) if not ok]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    # Only biolm's own logger is configured: Lightning has its own handler, and a root handler would
    # print its messages twice.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    biolm_log = logging.getLogger("biolm")
    biolm_log.addHandler(handler)
    biolm_log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    # Imported here so that `biolm --help` does not pay for torch.
    from biolm.errors import BiolmError

    try:
        return args.run(args) or 0
    except BiolmError as err:
        if args.verbose:
            raise
        print(f"biolm {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"biolm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
