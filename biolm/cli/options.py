"""What the `biolm eval` recipes' CLI modules share: the --out help, and mapping flags onto a recipe's
options dataclass (`biolm.evaluation.options`) without restating its defaults."""

from __future__ import annotations

import argparse
import dataclasses

OUT_HELP = (
    "report directory to write (its folder is created); an earlier report there is replaced as a whole, "
    "a directory that holds anything else, or an input, is refused"
)


def default(options: type, name: str) -> object:
    """The default of field `name` of an options dataclass, for a flag's help."""
    return next(f.default for f in dataclasses.fields(options) if f.name == name)


def listed(values) -> str:
    """A sequence default as its flag is written (`0.8,0.1,0.1`)."""
    return ",".join(str(v) for v in values)


def given(args: argparse.Namespace, options: type) -> dict:
    """The fields of an options dataclass that the user set by a flag (whose dest is the field's name);
    the others are left to the dataclass's defaults."""
    found = ((f.name, getattr(args, f.name, None)) for f in dataclasses.fields(options))
    return {name: value for name, value in found if value is not None}
