"""Save a model to a directory and load it back without any training code.

A model directory holds `model.safetensors` (weights), `config.yaml` (format version and the
`ModelConfig`) and `tokenizer.json`. It is written to a temporary sibling and renamed into place, so
an interrupted save never leaves a half-written model behind.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
from pathlib import Path

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model

from biolm.errors import ArgumentError, ConfigError, InputError
from biolm.io.files import regular_file
from biolm.io.outputs import DirectoryKind, output_directory
from biolm.io.yaml_files import MAX_YAML_BYTES, first_interpolation, read_yaml
from biolm.models.backbone import BioLM
from biolm.models.config import ModelConfig
from biolm.tokenizers import Tokenizer, load_tokenizer

logger = logging.getLogger(__name__)

MODEL_FORMAT = "biolm-model"
MODEL_FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.yaml"
TOKENIZER_FILE = "tokenizer.json"
MODEL_FILES = {WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE}
# The keys `save` writes at the top of config.yaml.
META_KEYS = ("format", "format_version", "model", "layout")
# The in-context layout a model was trained with, by token names (`biolm.data.layout.layout_spec`);
# absent for biolm's own layout.
LAYOUT_KEYS = {"open": str, "separator": str, "close": str, "restart_positions": bool, "fim": str}
LAYOUT_FIM_TARGETS = ("cut", "in_place")  # `biolm.data.layout.FIM_TARGETS`
# config.yaml is about 500 bytes as `save` writes it; the YAML reader's bound (1 MiB) is far above it.
MAX_CONFIG_BYTES = MAX_YAML_BYTES


def _recognise_model_directory(directory: Path) -> set[str] | None:
    """The files of a model directory `save` wrote before directories carried biolm's output marker:
    only the three model files, and a config.yaml of the model format."""
    names = {entry.name for entry in os.scandir(directory)}
    config = directory / CONFIG_FILE
    if not names <= MODEL_FILES or not config.is_file() or config.stat().st_size > MAX_CONFIG_BYTES:
        return None
    text = config.read_text(encoding="utf-8", errors="replace")
    return MODEL_FILES if re.search(rf"^format: {MODEL_FORMAT}\s*$", text, re.MULTILINE) else None


MODEL_DIRECTORY = DirectoryKind("model directory", "model", _recognise_model_directory)


def save(model: BioLM, tokenizer: Tokenizer, path: str | os.PathLike) -> Path:
    """Write `model` and `tokenizer` to the directory `path`, replacing an earlier model directory there
    as a whole, never a directory that holds anything else (`biolm.io.outputs`).

    Raises:
        OutputError: `path` cannot be written, or holds files that are not an earlier model's.
        DiskFullError: the disk is full; an earlier model directory at `path` is kept.
    """
    path = Path(path)
    with output_directory(path, MODEL_DIRECTORY) as staging:
        _save_weights(model, staging / WEIGHTS_FILE)
        meta = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "model": dataclasses.asdict(model.config),
        }
        if getattr(model, "layout_spec", None):
            meta["layout"] = dict(model.layout_spec)
        OmegaConf.save(OmegaConf.create(meta), staging / CONFIG_FILE)
        tokenizer.save(staging / TOKENIZER_FILE)
    return path


def _save_weights(model: BioLM, file: Path) -> None:
    """`save_model`, with its I/O errors as the OSError they are: safetensors reports a full disk as a
    SafetensorError that only quotes the errno ("File too large (os error 27)"), which `atomic_directory`
    could not tell from a bug."""
    try:
        save_model(model, str(file))
    except SafetensorError as err:
        found = re.search(r"os error (\d+)", str(err))
        if found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), str(file)) from err


def _read_meta(config_path: Path) -> dict:
    """The mapping in a model's config.yaml, read by the one YAML reader: a regular file of at most
    `MAX_CONFIG_BYTES`, no duplicate keys (PyYAML would keep the last one without a word), no alias bomb."""
    meta = read_yaml(config_path, "model config", MAX_CONFIG_BYTES)
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise InputError(
            f"{config_path}: not a biolm model config (no 'format: {MODEL_FORMAT}')"
            + _run_directory_hint(config_path.parent)
        )
    return meta


def _run_directory_hint(path: Path) -> str:
    """A pointer to `path/model` when `path` is a run directory (it has a config.yaml of its own, the
    training config, which users easily take for the model's)."""
    if (path / "model" / CONFIG_FILE).is_file():
        return f"; {path} looks like a run directory: give its model directory {path / 'model'}"
    return ""


def _unknown_settings(config_path: Path, unknown: list[str], known: list[str], section: str) -> InputError:
    """A typo (`d_modle`) gets the setting it was meant to be; anything else is taken for a setting of
    a newer biolm."""
    guesses = [(name, difflib.get_close_matches(name, known, n=1)) for name in unknown]
    typos = [f"{name} (did you mean {close[0]}?)" for name, close in guesses if close]
    if typos:
        return InputError(f"{config_path}: unknown {section} setting {', '.join(typos)}")
    return InputError(
        f"{config_path}: unknown {section} settings {', '.join(unknown)}; written by a newer biolm? "
        "upgrade biolm"
    )


def load_config(path: str | os.PathLike) -> ModelConfig:
    """Read the `ModelConfig` of a model directory, checking its format version and every setting.

    Raises:
        InputError: no or a damaged `config.yaml`, a newer format version, unknown settings, or a
            setting of the wrong type or value, naming the file and the setting.
    """
    config_path = Path(path) / CONFIG_FILE
    if not os.path.lexists(config_path):  # anything there (a FIFO, a device) is refused by the reader
        raise InputError(
            f"{path}: not a biolm model directory (no {CONFIG_FILE})" + _run_directory_hint(Path(path))
        )
    meta = _read_meta(config_path)
    version = meta.get("format_version")
    if version != MODEL_FORMAT_VERSION or isinstance(version, bool):
        newer = isinstance(version, int) and not isinstance(version, bool) and version > MODEL_FORMAT_VERSION
        hint = "written by a newer biolm; upgrade biolm" if newer else "not a version this biolm knows"
        raise InputError(
            f"{config_path}: model format version {version!r} is not supported by this biolm "
            f"(it reads version {MODEL_FORMAT_VERSION}); {hint}"
        )
    # Top-level keys are checked as strictly as the model's settings: a key this biolm does not know
    # may change what the weights mean.
    extra = sorted(str(k) for k in set(meta) - set(META_KEYS))
    if extra:
        raise _unknown_settings(config_path, extra, list(META_KEYS), "top-level")
    settings = meta.get("model")
    if not isinstance(settings, dict):
        raise InputError(f"{config_path}: no 'model' settings (found {type(settings).__name__})")
    known = [f.name for f in dataclasses.fields(ModelConfig)]
    unknown = sorted(str(k) for k in set(settings) - set(known))
    if unknown:
        raise _unknown_settings(config_path, unknown, known, "model")
    interpolated = first_interpolation(settings, "model")
    if interpolated is not None:
        key, value = interpolated
        raise InputError(
            f"{config_path}: {key} is {value!r}, an interpolation; a model's {CONFIG_FILE} holds plain "
            "values (biolm writes no ${...})"
        )
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
        InputError: not a model directory, or a missing, damaged or mismatched file in it (weights
            with NaN or infinite values included).
        ArgumentError: a device that is not one or that torch cannot use here.
    """
    device = _usable_device(device)
    path = Path(path)
    if not path.is_dir():
        raise InputError(_not_a_directory(path))
    config = _runnable_here(load_config(path), device, path / CONFIG_FILE)
    weights = path / WEIGHTS_FILE
    if not os.path.lexists(weights):
        raise InputError(f"{weights}: missing; the model directory is incomplete")
    # safetensors maps the file: a FIFO or a device (/dev/zero) is refused by name, not as damaged weights.
    regular_file(weights, "weights")
    _check_header(config, weights)
    try:
        model = BioLM(config)
    except (MemoryError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and "allocate" not in str(err):  # only the allocator's refusal
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(
            f"{path / CONFIG_FILE}: cannot build the model it describes ({first[:200]})"
        ) from None
    try:
        load_model(model, str(weights), device=str(device))
    except (SafetensorError, OSError) as err:
        raise _damaged(weights, err) from None
    except RuntimeError as err:  # shapes or names that do not fit the config
        # torch's first line only says "Error(s) in loading state_dict"; the next names a tensor.
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else type(err).__name__
        raise InputError(f"{weights}: the weights do not fit {CONFIG_FILE} ({detail[:200]})") from None
    # A NaN weight makes every output NaN: samples of one repeated token, NaN embeddings, no error.
    broken = _first_nonfinite(model)
    if broken is not None:
        raise InputError(
            f"{weights}: tensor {broken!r} holds NaN or infinite values; the weights are broken "
            "(from a diverged training run?)"
        )
    tokenizer_path = path / TOKENIZER_FILE
    try:
        model.tokenizer = load_tokenizer(tokenizer_path)
    except UnicodeDecodeError:
        raise InputError(
            f"{tokenizer_path}: not a text (UTF-8) file; the model directory is damaged"
        ) from None
    except OSError as err:
        raise InputError(f"{tokenizer_path}: cannot read ({err.strerror or err})") from None
    # `save` is given a model built for its tokenizer (training sets vocab_size to the tokenizer's), so
    # any difference means the tokenizer is another model's, e.g. of another domain, whose ids the
    # weights would read as their own tokens.
    if model.tokenizer.vocab_size != config.vocab_size:
        raise InputError(
            f"{tokenizer_path}: a {model.tokenizer.kind} tokenizer of {model.tokenizer.vocab_size} tokens, "
            f"but the model has {config.vocab_size} token ids (vocab_size in {CONFIG_FILE}); the files "
            "come from different models"
        )
    model.layout_spec = _layout_spec(path / CONFIG_FILE, model.tokenizer)
    return model.to(device).eval()


def _layout_spec(config_path: Path, tokenizer) -> dict | None:
    """The `layout:` of a model's config.yaml (None: biolm's own), its tokens checked against the
    tokenizer."""
    spec = _read_meta(config_path).get("layout")
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) != set(LAYOUT_KEYS):
        raise InputError(f"{config_path}: layout must have exactly the keys {', '.join(LAYOUT_KEYS)}")
    for key, kind in LAYOUT_KEYS.items():
        if not isinstance(spec[key], kind):
            raise InputError(f"{config_path}: layout {key} must be a {kind.__name__}, got {spec[key]!r}")
        if key == "fim":
            if spec[key] not in LAYOUT_FIM_TARGETS:
                raise InputError(f"{config_path}: layout fim must be one of {', '.join(LAYOUT_FIM_TARGETS)}")
        elif kind is str:
            try:
                tokenizer.token_to_id(spec[key])
            except KeyError:
                raise InputError(
                    f"{config_path}: layout {key} {spec[key]!r} is not a token of the model"
                ) from None
    return spec


def parse_device(device: str | torch.device) -> torch.device:
    """`device` as a torch device, or an ArgumentError naming {device} when torch reads no device in it."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ArgumentError(
            f"{{device}}: {str(device)!r} is not a torch device (e.g. cpu, cuda, cuda:1)", "device"
        ) from None


def _usable_device(device: str | torch.device) -> torch.device:
    """`device` as a torch device that can hold and run the model, checked before the weights are read:
    safetensors would report a device it cannot use as a damaged or unfitting weights file.

    Raises:
        ArgumentError: not a torch device, a meta device (no data), a CPU with an index, a CUDA or MPS
            device torch does not see here, or another device type torch cannot allocate on.
    """
    dev = parse_device(device)
    if dev.type == "meta":
        raise ArgumentError(
            f"{{device}} {dev}: a meta device holds no data (only shapes), so it cannot hold or run the "
            "model; use cpu or cuda",
            "device",
        )
    if dev.type == "cpu":
        if dev.index not in (None, 0):
            raise ArgumentError(
                f"{{device}} {dev}: torch has one CPU device, 'cpu' (no index); use cpu", "device"
            )
        return torch.device("cpu")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ArgumentError(f"{{device}} {dev}: torch sees no CUDA device here; use cpu", "device")
        if dev.index is not None and dev.index >= count:
            raise ArgumentError(
                f"{{device}} {dev}: torch sees {count} CUDA device(s), cuda:0 to cuda:{count - 1}", "device"
            )
        return dev
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ArgumentError(f"{{device}} {dev}: MPS is not available to torch here; use cpu", "device")
    # Any other type (xla, vulkan, xpu, hip, ...): torch names it, but this build may have no kernels for
    # it, or no such device. A tensor made there and read back is the test.
    try:
        torch.ones(2, device=dev).add(1).cpu()
    except Exception as err:  # NotImplementedError, RuntimeError, AssertionError, ModuleNotFoundError
        first = (str(err).strip().splitlines() or [""])[0].split(". ")[0][:160]
        reason = f" ({first})" if first else ""
        raise ArgumentError(
            f"{{device}} {dev}: torch cannot hold or run a model on device type {dev.type!r} here{reason}; "
            "use cpu or cuda",
            "device",
        ) from None
    return dev


def _runnable_here(config: ModelConfig, device: torch.device, config_path: Path) -> ModelConfig:
    """The config with a backend that can run on `device`. A model trained with model.backend=triton
    on a GPU has the same weights on every backend, so off CUDA it runs with "auto" (the kernels
    would otherwise raise at the first forward pass)."""
    if config.backend == "triton" and device.type != "cuda":
        logger.warning(
            "%s: model.backend 'triton' needs a CUDA device; on %s the model runs with backend 'auto'",
            config_path,
            device,
        )
        return dataclasses.replace(config, backend="auto")
    return config


def _damaged(weights: Path, err: Exception) -> InputError:
    return InputError(f"{weights}: cannot read the weights ({err}); the file is damaged or truncated")


def _check_header(config: ModelConfig, weights: Path) -> None:
    """Refuse a config that does not fit the weights file's header before any weights are allocated:
    a config.yaml that asks for a far larger model (`vocab_size: 100000000000`, `d_model: 12800`,
    `n_layers: 400`) must not get as far as the allocator. Only the embedding and the number of blocks
    are compared (from the header, no data read); `load_model` checks every tensor afterwards."""
    try:
        with safe_open(str(weights), framework="pt") as handle:
            shapes = {name: list(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError) as err:
        raise _damaged(weights, err) from None
    problems = []
    # A tied embedding is stored under one of its two names.
    embedding = shapes.get("embedding.weight", shapes.get("lm_head.weight"))
    expected = [config.vocab_size, config.block_config().d_model]
    if embedding is not None and embedding != expected:
        problems.append(f"the token embedding is {embedding} in the file, {expected} by {CONFIG_FILE}")
    blocks = {name.split(".")[1] for name in shapes if name.startswith("blocks.")}
    if blocks and len(blocks) != config.n_layers:
        problems.append(f"the file has {len(blocks)} blocks, {CONFIG_FILE} says n_layers {config.n_layers}")
    if problems:
        raise InputError(f"{weights}: the weights do not fit {CONFIG_FILE} ({'; '.join(problems)})")


def _first_nonfinite(model: BioLM) -> str | None:
    """The name of the first floating-point tensor of `model` with a NaN or infinite value, or None."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def _not_a_directory(path: Path) -> str:
    if not path.exists():
        return f"{path}: model directory not found"
    if path.name in (WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE):
        return f"{path}: a file of a model directory; give the directory {path.parent}"
    files = ", ".join((CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE))
    return f"{path}: not a directory (a model directory holds {files})"
