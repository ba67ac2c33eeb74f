"""Error types that the CLI reports as one line, without a traceback.

Everything a user can cause (a missing file, a bad record, a wrong config key) raises a subclass of
`BiolmError`; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Callable


class BiolmError(Exception):
    """Base class of errors caused by the user's input or configuration."""


class InputError(BiolmError, ValueError):
    """A file or record the user gave cannot be used (missing, empty, malformed)."""


class DiskFullError(BiolmError):
    """An output could not be written for want of space (a full disk, a quota, a file-size limit).

    Not an InputError: the user's input is fine, and a reader that skips bad inputs must not skip it."""


class OutputError(BiolmError):
    """An output cannot go where it was asked to: it would replace an input, a directory or file that
    biolm did not write, or a device; or the place cannot be written (`biolm.io.outputs`).

    Not an InputError, for the reason DiskFullError is not one."""


class ConfigError(BiolmError, ValueError):
    """A configuration key or value is wrong."""


class ArgumentError(InputError):
    """A bad argument of a library call, named in the message as the caller spells it.

    The message is a template in which each of `arguments` appears in braces: `ArgumentError("{top_p}
    must be in (0, 1], got 0", "top_p")`. `str(err)` names the Python arguments (`top_p must be in
    (0, 1], got 0`) and `spelled` names them another way: the CLI passes its flag for each
    (`--top-p must be in (0, 1], got 0`), so one check serves the library and the command line. Only the
    declared names are replaced, so braces in a file name or a record are left alone.
    """

    def __init__(self, template: str, *arguments: str) -> None:
        self.template, self.arguments = template, arguments
        super().__init__(self.spelled(lambda name: name))

    def spelled(self, spell: Callable[[str], str]) -> str:
        """The message with each argument `name` written as `spell(name)`."""
        message = self.template
        for name in self.arguments:
            message = message.replace("{" + name + "}", spell(name))
        return message

    def renamed(self, **names: str) -> ArgumentError:
        """The same error with arguments renamed (`renamed(smiles_column="column")`): for a function
        that passes its own argument on to a reader under the reader's name."""
        template = self.template
        for old, new in names.items():
            template = template.replace("{" + old + "}", "{" + new + "}")
        return ArgumentError(template, *(names.get(name, name) for name in self.arguments))
