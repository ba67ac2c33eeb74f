"""Choosing a table's column: by its exact name when the caller gives one, else by a known name."""

from __future__ import annotations

import os
from collections.abc import Sequence

from biolm.errors import ArgumentError


def pick_column(
    header: Sequence[str],
    known: Sequence[str],
    *,
    path: str | os.PathLike,
    what: str,
    argument: str,
    wanted: str | None = None,
    required: bool = True,
) -> int | None:
    """Index of a column of `header`.

    Args:
        known: names to look for when `wanted` is None, in order of preference, compared without
            case and surrounding spaces.
        path: the file, for messages.
        what: what the column holds ("sequence", "label", "SMILES"), for messages.
        argument: the caller's argument that names the column (`column`, `smiles_column`): an error
            is an `ArgumentError` naming it, so the CLI can name its flag or config key instead.
        wanted: the exact name of the column to use.
        required: raise when no known name is found (else return None).

    Raises:
        ArgumentError: no column `wanted`, or (`required`) none of `known`; the message lists the
            file's columns.
    """
    columns = ", ".join(header)
    if wanted is not None:
        if wanted in header:
            return list(header).index(wanted)
        raise ArgumentError(f"{path}: no column {wanted!r} ({{{argument}}}); columns are {columns}", argument)
    lowered = [name.strip().lower() for name in header]
    for name in known:
        if name in lowered:
            return lowered.index(name)
    if not required:
        return None
    raise ArgumentError(
        f"{path}: no {what} column found among {columns}; name it with {{{argument}}} "
        f"(looked for {', '.join(dict.fromkeys(known))}, any case)",
        argument,
    )
