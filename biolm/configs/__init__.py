"""Packaged YAML configs and their loading: schema check, `key=value` overrides, interpolations resolved
once, one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from biolm.configs.schema import TrainConfig
from biolm.errors import ConfigError, InputError
from biolm.io.yaml_files import first_interpolation, read_yaml

CONFIG_DIR = Path(__file__).parent


def packaged_config(domain: str, name: str = "default") -> Path:
    """Path of a domain's packaged config, e.g. `packaged_config("dna")` -> `configs/dna/default.yaml`
    (a domain may keep its configs elsewhere: `biolm.domains.Domain.config_dir`)."""
    from biolm.domains import get_domain

    try:
        found = get_domain(domain)
    except InputError as err:
        raise ConfigError(str(err)) from None
    folder = found.config_dir or CONFIG_DIR / found.name
    path = folder / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"no config {name!r} for {domain!r}; available: {', '.join(available) or 'none'}")
    return path


def _describe(err: OmegaConfBaseException, source: str) -> str:
    key = getattr(err, "full_key", None) or getattr(err, "key", None)
    if isinstance(err, ConfigKeyError) and key:
        return f"{source}: unknown config key '{key}'"
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"{source}: {first_line}" + (f" (key '{key}')" if key and str(key) not in first_line else "")


def _read_yaml(path: str | os.PathLike) -> DictConfig:
    """The YAML mapping in `path`, read by the one YAML reader (a regular file of bounded size, no
    duplicate keys, no alias bomb); anything else (unreadable, not UTF-8, a YAML syntax error, a list or
    a scalar) is a one-line ConfigError naming the file (and the key and line where there is one)."""
    try:
        data = read_yaml(path, "config")
    except InputError as err:
        raise ConfigError(str(err)) from None
    if data is None:
        return OmegaConf.create({})
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a config is a mapping of sections and keys (e.g. 'trainer:' with 'max_steps: 100'), "
            f"not a {type(data).__name__}"
        )
    # The reader types scalars as OmegaConf's own loader does (1e-3 is a float).
    return OmegaConf.create(data)


def _check_resolves(config: DictConfig, source: str) -> None:
    """Every interpolation of `config` resolves, to a value of its key's type, and leaves no `${` behind:
    checked after each source is merged, so that an error names the file or override that brought it.

    A value that is still `${...}` once resolved (`\\${x}`, OmegaConf's escape) would become a real
    interpolation when the run's saved config.yaml is read back by `--resume`.
    """
    try:
        values = OmegaConf.to_container(config, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(_describe(err, source)) from None
    found = first_interpolation(values)
    if found is not None:
        key, value = found
        raise ConfigError(
            f"{source}: key '{key}' is {value!r} once interpolations are resolved; a config value cannot "
            "hold '${' (the run's saved config would read it as an interpolation)"
        )


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> DictConfig:
    """Read a YAML config, check it against `TrainConfig`, apply `key=value` overrides, and resolve its
    interpolations (`${other.key}`, `${oc.env:VAR}`), so that the config a run saves holds plain values.

    Raises:
        ConfigError: an unreadable or malformed file, an unknown key, a value of the wrong type, an
            interpolation that does not resolve, or an override without `=`; one line naming the file
            (or override) and the key.
    """
    schema = OmegaConf.structured(TrainConfig)
    try:
        config = OmegaConf.merge(schema, _read_yaml(path))
    except OmegaConfBaseException as err:
        raise ConfigError(_describe(err, str(path))) from None
    _check_resolves(config, str(path))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            config.merge_with(OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as err:
            raise ConfigError(_describe(err, f"override {item!r}")) from None
        _check_resolves(config, f"override {item!r}")
    try:
        OmegaConf.resolve(config)
    except OmegaConfBaseException as err:  # checked above; kept one line all the same
        raise ConfigError(_describe(err, str(path))) from None
    return config


def to_train_config(config: DictConfig) -> TrainConfig:
    """The typed dataclass form; runs each dataclass's own validation (e.g. `ModelConfig`).

    Raises:
        ConfigError: a value its dataclass refuses, or one OmegaConf cannot convert or resolve (a config
            not made by `load_config`); one line naming the key.
    """
    try:
        return OmegaConf.to_object(config)
    except OmegaConfBaseException as err:
        raise ConfigError(_describe(err, "config")) from None
