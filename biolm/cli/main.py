"""The `biolm` command: one sub-command per module in this package."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading

from biolm import __version__
from biolm.cli import convert, embed, generate, info, train
from biolm.cli import eval as eval_command

COMMANDS = {
    "train": train,
    "embed": embed,
    "generate": generate,
    "eval": eval_command,
    "convert": convert,
    "info": info,
}
# The exit status after SIGTERM, as a shell reports a process the signal ended (128 + 15).
SIGTERM_EXIT = 128 + signal.SIGTERM
# Seconds after which SIGTERM's exception is raised again while the command still runs (see _terminate):
# long enough for the atomic writers' cleanup, which a second raise would interrupt.
SIGTERM_RETRY_S = 5.0


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C: the atomic writers' cleanup runs, so nothing is
    left half-written (Python's default action ends the process without running it)."""


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


class _Console(logging.Handler):
    """Writes records to sys.stdout or sys.stderr as they are at the time of the record, so that a
    redirected or captured stream gets them."""

    def __init__(self, stream: str, fmt: str) -> None:
        super().__init__()
        self.stream = stream
        self.setFormatter(logging.Formatter(fmt))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            out = getattr(sys, self.stream)
            out.write(self.format(record) + "\n")
            out.flush()
        except Exception:
            self.handleError(record)


def configure_logging(verbose: bool) -> None:
    """The CLI's terminal: the run's story (`biolm.run`: data, run directory, resume point) plainly on
    stdout, every other biolm record on stderr with its logger's name. Only biolm's loggers are
    configured: Lightning has its own handler, and a root handler would print its messages twice.
    Calling it again (main() run twice in one process) replaces the handlers instead of adding more."""
    for name, stream, fmt, propagate in (
        ("biolm", "stderr", "%(name)s: %(message)s", True),
        ("biolm.run", "stdout", "%(message)s", False),
    ):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _Console)]:
            logger.removeHandler(old)
        logger.addHandler(_Console(stream, fmt))
        logger.propagate = propagate
    logging.getLogger("biolm").setLevel(logging.DEBUG if verbose else logging.INFO)


def _command_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """dest -> long flag of every option of the command that ran (`biolm eval zeroshot` included)."""
    options: dict[str, str] = {}
    while parser is not None:
        chosen = None
        for action in parser._actions:  # argparse keeps no public list of them
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(args, action.dest, None) or "")
            elif action.option_strings:
                options.setdefault(action.dest, max(action.option_strings, key=len))
        parser = chosen
    return options


def _as_flags(err: Exception, parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The error's message, with a library call's argument names (`ArgumentError`) written as the flags
    or config keys that set them: a command may map an argument to its flag in `argument_flags`."""
    from biolm.errors import ArgumentError

    if not isinstance(err, ArgumentError):
        return str(err)
    options = {**_command_options(parser, args), **getattr(args, "argument_flags", {})}
    return err.spelled(lambda name: options.get(name, name))


def _terminate(signum, frame) -> None:
    # Raised again (SIGALRM) until the command has ended: C code that calls Python and clears its
    # errors (PyObject_HasAttr on an object with a Python __getattr__) can swallow it, as it can Ctrl-C's.
    signal.signal(signal.SIGALRM, _terminate)
    signal.setitimer(signal.ITIMER_REAL, SIGTERM_RETRY_S)
    raise Terminated


@contextlib.contextmanager
def _sigterm_raises(command: str):
    """SIGTERM raises `Terminated` while the block runs, except for `biolm train`: Lightning handles
    SIGTERM during fit itself (on_exception.ckpt, then `RunStopped`) and calls the handler it found."""
    if command == "train" or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    previous_alarm = signal.getsignal(signal.SIGALRM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if signal.getsignal(signal.SIGALRM) is _terminate:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous_alarm)


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
    configure_logging(args.verbose)
    # Imported here so that `biolm --help` does not pay for torch.
    from biolm.errors import BiolmError

    try:
        with _sigterm_raises(args.command):
            return args.run(args) or 0
    except BiolmError as err:
        if args.verbose:
            raise
        print(f"biolm {args.command}: error: {_as_flags(err, parser, args)}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"biolm {args.command}: error: stopped by SIGTERM", file=sys.stderr)
        return SIGTERM_EXIT
    except KeyboardInterrupt:
        print(f"biolm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
