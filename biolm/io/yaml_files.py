"""The one YAML reader: training configs and the `config.yaml` of model directories.

A config is read whole, so it is bounded like every other file read whole (`MAX_YAML_BYTES`, a regular
file: a FIFO would hang the reader, `/dev/zero` fill the memory). YAML's own traps are refused in one
line naming the file, the key and the line, before anything is built from the document:

- a key given twice in one mapping (PyYAML keeps the last one without a word, OmegaConf refuses it
  with a traceback);
- aliases that expand past `MAX_YAML_NODES` values (a "billion laughs" document is a few hundred bytes
  whose aliases expand to 10^9 values: whoever walks it, OmegaConf or a merge, holds them all), and
  recursive aliases;
- syntax errors, with line and column.

Scalars are typed as OmegaConf types them (`1e-5` is a float, as YAML 1.2 has it, where PyYAML's
YAML 1.1 makes it a string; a date stays a string), so a document means the same here as to OmegaConf.
"""

from __future__ import annotations

import os
import re
from typing import Any

import yaml

from biolm.errors import InputError
from biolm.io.files import read_bounded

# Configs are a few kilobytes (a model's config.yaml about 500 bytes); a megabyte is far beyond any of
# them, and small enough to read and parse whole in well under a second.
MAX_YAML_BYTES = 1 << 20
# Values (mappings, lists and scalars) a document may hold once its aliases are expanded. A training
# config holds about 100; OmegaConf's own limit is 10,000. 100,000 leaves room for long lists (a
# complement table, file lists) and keeps what OmegaConf builds from them to tens of megabytes.
MAX_YAML_NODES = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """PyYAML's safe loader, with OmegaConf's scalar types. libyaml's parser (where PyYAML has it) is
    ten times faster than PyYAML's own, and refuses a document nested more than 1,000 deep."""


# The same implicit float resolver and no timestamps, as OmegaConf's loader (omegaconf/_yaml.py).
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:
         [-+]?[0-9]+(?:_[0-9]+)*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9]+(?:_[0-9]+)*(?:[eE][-+]?[0-9]+)
        |\.[0-9]+(?:_[0-9]+)*(?:[eE][-+][0-9]+)?
        |[-+]?[0-9]+(?:_[0-9]+)*(?::[0-5]?[0-9])+\.[0-9_]*
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}


def read_yaml(path: str | os.PathLike, what: str = "config", max_bytes: int = MAX_YAML_BYTES) -> Any:
    """The document in the YAML file `path` as plain Python values (None for an empty file).

    Args:
        what: what the file is, for messages ("config", "model config").

    Raises:
        InputError: not a regular file, larger than `max_bytes`, not UTF-8, not valid YAML, a duplicate
            key, recursive aliases or aliases that expand past `MAX_YAML_NODES` values; one line naming
            the file (and the key and line where there is one).
    """
    data = read_bounded(path, what, max_bytes)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{path}: not a text (UTF-8) file, so not a YAML {what} ({err.reason} at byte {err.start})"
        ) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document `text` as plain Python values, checked as `read_yaml` checks a file.

    Args:
        source: where `text` comes from, first in every message (a file name).
    """
    loader = None
    try:
        loader = _Loader(text)  # checks the characters
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, source)
        try:
            return loader.construct_document(node)
        except (ValueError, KeyError, TypeError, OverflowError) as err:  # `!!int abc`, `!!bool maybe`
            detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise InputError(
                f"{source}: not valid YAML (a tagged value that is not of its type: {detail})"
            ) from None
    except yaml.MarkedYAMLError as err:
        raise InputError(f"{source}: not valid YAML{_where(err.problem_mark)} ({_problem(err)})") from None
    except yaml.reader.ReaderError as err:
        raise InputError(f"{source}: not valid YAML ({err.reason} at character {err.position})") from None
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{source}: not valid YAML ({first})") from None
    except UnicodeError as err:  # a str that is not text (lone surrogates)
        raise InputError(f"{source}: not valid YAML ({err.reason})") from None
    except RecursionError:
        raise InputError(f"{source}: YAML nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _where(mark: yaml.Mark | None) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def _problem(err: yaml.MarkedYAMLError) -> str:
    return str(err.problem or err.context or type(err).__name__)


def _key_name(key: yaml.Node) -> str:
    return str(key.value) if isinstance(key, yaml.ScalarNode) else f"<{key.id} key>"


def _check_nodes(root: yaml.Node, source: str, limit: int = MAX_YAML_NODES) -> None:
    """Refuse duplicate keys, recursive aliases, and aliases that expand the document past `limit` values.

    Each node is walked once (an alias is a second reference to the same node): its expanded size is
    remembered, so a billion-laughs document costs as many steps as it has lines.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, key: str) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if id(node) in open_nodes:
            raise InputError(
                f"{source}: {_at_key(key)}a recursive YAML alias (a value that contains itself) "
                f"at line {node.start_mark.line + 1}"
            )
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for index, child in enumerate(node.value):
                total += size(child, f"{key}[{index}]")
        elif isinstance(node, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key_node, value_node in node.value:
                name = _key_name(key_node)
                child_key = f"{key}.{name}" if key else name
                if key_node.tag != _MERGE_TAG and isinstance(key_node, yaml.ScalarNode):
                    line = key_node.start_mark.line + 1
                    if name in first_line:
                        raise InputError(
                            f"{source}: duplicate key '{child_key}' at line {line} (first at line "
                            f"{first_line[name]}); give each key once"
                        )
                    first_line[name] = line
                total += size(key_node, child_key) + size(value_node, child_key)
        if total > limit:
            raise InputError(
                f"{source}: {_at_key(key)}more than {limit:,} values once YAML aliases are expanded "
                f"(line {node.start_mark.line + 1}; an alias bomb?)"
            )
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root, "")


def _at_key(key: str) -> str:
    return f"key '{key}': " if key else ""


def first_interpolation(value: Any, key: str = "") -> tuple[str, str] | None:
    """(dotted key, value) of the first string in the plain `value` (as `read_yaml` returns it) that
    OmegaConf would take for an interpolation (`${...}`), or None."""
    if isinstance(value, str):
        return (key, value) if "${" in value else None
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for name, child in children:
        inner = f"{key}[{name}]" if isinstance(name, int) else f"{key}.{name}" if key else str(name)
        found = first_interpolation(child, inner)
        if found is not None:
            return found
    return None
