"""Save a model to a directory and load it back without any training code.

A model directory holds `model.safetensors` (weights), `config.yaml` (format version and the
`ModelConfig`) and `tokenizer.json`. It is written to a temporary sibling and renamed into place, so
an interrupted save never leaves a half-written model behind.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_model, save_model

from biolm.errors import InputError
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
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        save_model(model, str(staging / WEIGHTS_FILE))
        meta = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "model": dataclasses.asdict(model.config),
        }
        OmegaConf.save(OmegaConf.create(meta), staging / CONFIG_FILE)
        tokenizer.save(staging / TOKENIZER_FILE)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(staging, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path


def load_config(path: str | os.PathLike) -> ModelConfig:
    """Read the `ModelConfig` of a model directory, checking its format version."""
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        raise InputError(f"{path}: not a biolm model directory (no {CONFIG_FILE})")
    meta = OmegaConf.to_container(OmegaConf.load(config_path))
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise InputError(f"{config_path}: not a biolm model config")
    version = meta.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        raise InputError(
            f"{config_path}: model format version {version} is not supported by this biolm "
            f"(it reads version {MODEL_FORMAT_VERSION}); upgrade biolm"
        )
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(meta["model"]) - known)
    if unknown:
        raise InputError(f"{config_path}: unknown model settings {', '.join(unknown)}; upgrade biolm")
    return ModelConfig(**meta["model"])


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> BioLM:
    """Load a saved model for inference; its tokenizer is attached as `model.tokenizer`.

    Args:
        path: a directory written by `save` (e.g. `runs/<name>/model`).
        device: where to put the weights.

    Returns:
        The model in eval mode.
    """
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: model directory not found")
    model = BioLM(load_config(path))
    load_model(model, str(path / WEIGHTS_FILE), device=str(device))
    model.tokenizer = load_tokenizer(path / TOKENIZER_FILE)
    return model.to(device).eval()
