"""`biolm info [MODEL_DIR]`: versions, devices, which kernel backend each op would use and why, and
what a model directory holds."""

from __future__ import annotations

import argparse
import platform
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "info",
        help="show versions, devices and kernel backends",
        description=(
            "Print the versions of biolm and its main dependencies, the devices torch sees, and for each "
            "kernel op the backend that backend='auto' would pick on a device, with the reason. With "
            "MODEL_DIR, also what the model is (domain, blocks, parameters, what it can be used for), "
            "after checking every file of the directory as `embed` and `generate` would."
        ),
    )
    parser.add_argument("model_dir", nargs="?", type=Path, help="a model directory, e.g. runs/dna/model")
    parser.add_argument(
        "--device", default=None, help="device to report for (default: cuda if available, else cpu)"
    )
    parser.set_defaults(run=run)


def _version(module_name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module_name)
    except PackageNotFoundError:
        return "not installed"


def run(args: argparse.Namespace) -> int:
    import torch

    import biolm.kernels  # noqa: F401  (importing registers every op)
    from biolm import __version__
    from biolm.kernels.registry import backend_report
    from biolm.models.io import parse_device

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    parse_device(device)  # a bad --device is one line, not a traceback from the backend report
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    rows = [
        ("biolm", __version__),
        ("python", platform.python_version()),
        ("torch", f"{torch.__version__} (threads: {torch.get_num_threads()})"),
        ("lightning", _version("lightning")),
        ("triton", _version("triton")),
        ("CUDA device", cuda),
    ]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
    print(f"\nkernel backends for device '{device}' (backend='auto'):")
    report = backend_report(device)
    op_width = max(len(op) for op, _, _ in report)
    for op, backend, reason in report:
        print(f"  {op.ljust(op_width)}  {backend:<9} {reason}")
    if args.model_dir is not None:
        print(f"\nmodel {args.model_dir}:")
        print("\n".join(f"  {k.ljust(10)}  {v}" for k, v in describe_model(args.model_dir)))
    return 0


def describe_model(path: Path) -> list[tuple[str, str]]:
    """(label, text) rows describing the model directory `path`, loaded (and so checked) on the CPU."""
    from biolm.domains import domain_of
    from biolm.models.io import WEIGHTS_FILE, load

    model = load(path)
    config, tokenizer = model.config, model.tokenizer
    domain = domain_of(tokenizer)
    modes = [
        name
        for name, on in [("bidirectional", config.bidirectional), ("RC-equivariant", config.rc_equivariant)]
        if on
    ]
    use = (
        f"{' and '.join(modes)}: embed and score; cannot generate"
        if modes
        else "causal: embed, score, generate"
    )
    blocks = (
        f"{config.n_layers} of pattern {config.pattern!r}, d_model {config.d_model}, {config.num_heads} heads"
    )
    return [
        ("domain", f"{domain.name} ({tokenizer.vocab_size} tokens)"),
        ("blocks", blocks),
        ("parameters", f"{model.num_parameters():,}"),
        ("use", use),
        ("backend", config.backend),
        ("weights", f"{WEIGHTS_FILE}, {(path / WEIGHTS_FILE).stat().st_size / 1e6:.2f} MB"),
    ]
