"""Packaged YAML configs and their loading: schema check, `key=value` overrides, one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

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


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> DictConfig:
    """Read a YAML config, check it against `TrainConfig`, and apply `key=value` overrides.

    Raises:
        ConfigError: an unknown key, a value of the wrong type, or an override without `=`.
    """
    schema = OmegaConf.structured(TrainConfig)
    try:
        config = OmegaConf.merge(schema, OmegaConf.load(path))
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
