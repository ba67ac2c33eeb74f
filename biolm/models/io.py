"""Save a model to a directory and load it back without any training code.

A model directory holds `model.safetensors` (weights), `config.yaml` (format version and the
`ModelConfig`) and `tokenizer.json`. It is written to a temporary sibling and renamed into place, so
an interrupted save never leaves a half-written model behind.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from biolm.errors import ConfigError, InputError
from biolm.io.files import atomic_directory
from biolm.models.backbone import BioLM
from biolm.models.config import ModelConfig
from biolm.tokenizers import Tokenizer, load_tokenizer

MODEL_FORMAT = "biolm-model"
MODEL_FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
TOKENIZER_FILE = "tokenizer.json"


def save(model: BioLM, tokenizer: Tokenizer, path: str | os.PathLike) -> Path:
    """Write `model` and `tokenizer` to the directory `path` (replaced if it exists)."""
    path = Path(path)
    with atomic_directory(path) as staging:
        save_model(model, str(staging / WEIGHTS_FILE))
        meta = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "model": dataclasses.asdict(model.config),
        }
        OmegaConf.save(OmegaConf.create(meta), staging / CONFIG_FILE)
        tokenizer.save(staging / TOKENIZER_FILE)
    return path


def _read_meta(config_path: Path) -> dict:
    try:
        text = config_path.read_text(encoding="utf-8")
        meta = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise InputError(f"{config_path}: not a text (UTF-8) file; the model directory is damaged") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise InputError(f"{config_path}: not valid YAML{where} ({problem})") from None
    except OSError as err:
        raise InputError(f"{config_path}: cannot read ({err.strerror or err})") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise InputError(f"{config_path}: not a biolm model config (no 'format: {MODEL_FORMAT}')")
    return meta


def load_config(path: str | os.PathLike) -> ModelConfig:
    """Read the `ModelConfig` of a model directory, checking its format version and every setting.

    Raises:
        InputError: no or a damaged `config.yaml`, a newer format version, unknown settings, or a
            setting of the wrong type or value, naming the file and the setting.
    """
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        raise InputError(f"{path}: not a biolm model directory (no {CONFIG_FILE})")
    meta = _read_meta(config_path)
    version = meta.get("format_version")
    if version != MODEL_FORMAT_VERSION or isinstance(version, bool):
        newer = isinstance(version, int) and not isinstance(version, bool) and version > MODEL_FORMAT_VERSION
        hint = "written by a newer biolm; upgrade biolm" if newer else "not a version this biolm knows"
        raise InputError(
            f"{config_path}: model format version {version!r} is not supported by this biolm "
            f"(it reads version {MODEL_FORMAT_VERSION}); {hint}"
        )
    settings = meta.get("model")
    if not isinstance(settings, dict):
        raise InputError(f"{config_path}: no 'model' settings (found {type(settings).__name__})")
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(str(k) for k in set(settings) - known)
    if unknown:
        raise InputError(f"{config_path}: unknown model settings {', '.join(unknown)}; upgrade biolm")
    try:
        # Through OmegaConf's structured config, so that a value of the wrong type names its key.
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelConfig), settings))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{config_path}: {first}" + (f" (setting model.{key})" if key else "")) from None
    except ConfigError as err:
        raise InputError(f"{config_path}: {err}") from None


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> BioLM:
    """Load a saved model for inference; its tokenizer is attached as `model.tokenizer`.

    Args:
        path: a directory written by `save` (e.g. `runs/<name>/model`).
        device: where to put the weights.

    Returns:
        The model in eval mode.

    Raises:
        InputError: not a model directory, or a missing, damaged or mismatched file in it.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: model directory not found")
    config = load_config(path)
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise InputError(f"{weights}: missing; the model directory is incomplete")
    model = BioLM(config)
    try:
        load_model(model, str(weights), device=str(device))
    except (SafetensorError, OSError) as err:
        raise InputError(
            f"{weights}: cannot read the weights ({err}); the file is damaged or truncated"
        ) from None
    except RuntimeError as err:  # shapes or names that do not fit the config
        # torch's first line only says "Error(s) in loading state_dict"; the next names a tensor.
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else type(err).__name__
        raise InputError(f"{weights}: the weights do not fit {CONFIG_FILE} ({detail[:200]})") from None
    tokenizer_path = path / TOKENIZER_FILE
    try:
        model.tokenizer = load_tokenizer(tokenizer_path)
    except UnicodeDecodeError:
        raise InputError(
            f"{tokenizer_path}: not a text (UTF-8) file; the model directory is damaged"
        ) from None
    except OSError as err:
        raise InputError(f"{tokenizer_path}: cannot read ({err.strerror or err})") from None
    if model.tokenizer.vocab_size > config.vocab_size:
        raise InputError(
            f"{tokenizer_path}: {model.tokenizer.vocab_size} tokens, but the model has only "
            f"{config.vocab_size} (vocab_size in {CONFIG_FILE}); the files come from different models"
        )
    return model.to(device).eval()
