"""Packaged YAML configs and their loading: schema check, `key=value` overrides, one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from biolm.configs.schema import TrainConfig
from biolm.errors import ConfigError

CONFIG_DIR = Path(__file__).parent


def packaged_config(domain: str, name: str = "default") -> Path:
    """Path of a packaged config, e.g. `packaged_config("dna")` -> `configs/dna/default.yaml`."""
    path = CONFIG_DIR / domain / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in (CONFIG_DIR / domain).glob("*.yaml"))
        raise ConfigError(f"no config {name!r} for {domain!r}; available: {', '.join(available) or 'none'}")
    return path


def _describe(err: OmegaConfBaseException, source: str) -> str:
    key = getattr(err, "full_key", None) or getattr(err, "key", None)
    if isinstance(err, ConfigKeyError) and key:
        return f"{source}: unknown config key '{key}'"
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"{source}: {first_line}" + (f" (key '{key}')" if key and str(key) not in first_line else "")


def _read_yaml(path: str | os.PathLike) -> DictConfig:
    """The YAML mapping in `path`; anything else (unreadable, not UTF-8, a YAML syntax error, a list or
    a scalar) is a one-line ConfigError naming the file (and the line, for a syntax error)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8) file, so not a YAML config") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ConfigError(f"{path}: not valid YAML{where} ({problem})") from None
    if data is None:
        return OmegaConf.create({})
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a config is a mapping of sections and keys (e.g. 'trainer:' with 'max_steps: 100'), "
            f"not a {type(data).__name__}"
        )
    # OmegaConf reads the text itself (its YAML loader differs from PyYAML's in a few details).
    return OmegaConf.create(text)


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> DictConfig:
    """Read a YAML config, check it against `TrainConfig`, and apply `key=value` overrides.

    Raises:
        ConfigError: an unreadable or malformed file, an unknown key, a value of the wrong type, or an
            override without `=`; one line naming the file (or override) and the key.
    """
    schema = OmegaConf.structured(TrainConfig)
    try:
        config = OmegaConf.merge(schema, _read_yaml(path))
    except OmegaConfBaseException as err:
        raise ConfigError(_describe(err, str(path))) from None
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            config.merge_with(OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as err:
            raise ConfigError(_describe(err, f"override {item!r}")) from None
    return config


def to_train_config(config: DictConfig) -> TrainConfig:
    """The typed dataclass form; runs each dataclass's own validation (e.g. `ModelConfig`)."""
    return OmegaConf.to_object(config)
