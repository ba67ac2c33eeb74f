"""`biolm info`: versions, devices, and which kernel backend each op would use, and why."""

from __future__ import annotations

import argparse
import platform


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "info",
        help="show versions, devices and kernel backends",
        description=(
            "Print the versions of biolm and its main dependencies, the devices torch sees, and for each "
            "kernel op the backend that backend='auto' would pick on a device, with the reason."
        ),
    )
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

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
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
    return 0
