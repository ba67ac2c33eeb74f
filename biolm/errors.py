"""Error types that the CLI reports as one line, without a traceback.

Everything a user can cause (a missing file, a bad record, a wrong config key) raises a subclass of
`BiolmError`; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class BiolmError(Exception):
    """Base class of errors caused by the user's input or configuration."""


class InputError(BiolmError, ValueError):
    """A file or record the user gave cannot be used (missing, empty, malformed)."""


class ConfigError(BiolmError, ValueError):
    """A configuration key or value is wrong."""
