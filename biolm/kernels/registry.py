"""Backend selection for the kernels: which implementation of an op runs on a given device.

Backends: ``"torch"`` (pure PyTorch, any device), ``"triton"`` (CUDA kernels, when one is registered
for the op) and ``"reference"`` (the slow recurrent ground truth). ``"auto"`` picks triton only when
the device is CUDA, triton imports and a triton kernel is registered for the op; otherwise torch.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable

import torch

logger = logging.getLogger("biolm.kernels")

BACKENDS = ("auto", "torch", "triton", "reference")

_OPS: set[str] = set()
# op -> the triton implementation, or "module:attribute" to import on first use (so that importing
# biolm never imports triton).
_TRITON_KERNELS: dict[str, Callable | str] = {}
# Ops whose triton kernel "auto" may pick. A kernel joins only after it has been checked on a real GPU
# (tests/kernels/test_*_triton.py -m gpu); until then it runs only when asked for by name.
_TRITON_AUTO: set[str] = set()
# (op, backend) -> reason, in the order first chosen; also guards the log-once.
_DECISIONS: dict[tuple[str, str], str] = {}


def register_op(op: str) -> None:
    """Declare an op that has torch and reference implementations, so reports list it."""
    _OPS.add(op)


def register_triton_kernel(op: str, fn: Callable | str, *, auto: bool = True) -> None:
    """Register the triton implementation of ``op``.

    Args:
        op: Op name.
        fn: The implementation, or ``"package.module:attribute"`` to import lazily on first use. It takes
            the arguments of the op's torch implementation (for ``"mlstm"``:
            ``fn(q, k, v, i, f, state=..., chunk_size=...) -> (h, MLSTMState)``).
        auto: Whether ``"auto"`` may pick it on CUDA; False keeps it opt-in (``backend="triton"``).
    """
    _OPS.add(op)
    _TRITON_KERNELS[op] = fn
    (_TRITON_AUTO.add if auto else _TRITON_AUTO.discard)(op)


def get_triton_kernel(op: str) -> Callable:
    """The triton implementation of ``op``, imported on first use (KeyError when none)."""
    fn = _TRITON_KERNELS[op]
    if isinstance(fn, str):
        module, _, attribute = fn.partition(":")
        fn = getattr(importlib.import_module(module), attribute)
        _TRITON_KERNELS[op] = fn
    return fn


@functools.lru_cache(maxsize=1)
def _triton_import_error() -> str | None:
    try:
        importlib.import_module("triton")
    except Exception as exc:  # a broken install must not break the torch path
        return f"triton not installed or failed to import ({type(exc).__name__}: {exc})"
    return None


def _triton_unavailable(op: str, device: torch.device) -> str | None:
    """Why triton cannot run ``op`` on ``device``, or None when it can."""
    if device.type != "cuda":
        return f"no CUDA (device is {device.type})"
    err = _triton_import_error()
    if err is not None:
        return err
    if op not in _TRITON_KERNELS:
        return f"no triton kernel for op {op!r} (not implemented yet)"
    try:
        get_triton_kernel(op)
    except Exception as exc:
        return f"the triton kernel for op {op!r} failed to load ({type(exc).__name__}: {exc})"
    return None


def _decide(op: str, backend: str, device: torch.device) -> tuple[str, str]:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} for op {op!r}; valid backends: {', '.join(BACKENDS)}")
    why_not = _triton_unavailable(op, torch.device(device))
    if backend == "triton":
        if why_not is not None:
            raise RuntimeError(f"backend 'triton' requested for op {op!r} but unavailable: {why_not}")
        return "triton", "requested"
    if backend in ("torch", "reference"):
        return backend, "requested"
    if why_not is not None:
        return "torch", f"auto: {why_not}"
    if op not in _TRITON_AUTO:
        return "torch", "auto: triton kernel not yet validated on a GPU (use backend='triton' to try it)"
    return "triton", "auto: CUDA device with a registered triton kernel"


def resolve_backend(op: str, backend: str, device: torch.device) -> str:
    """Resolve a backend request for ``op`` on ``device``.

    Args:
        op: Op name, e.g. ``"mlstm"``.
        backend: One of ``"auto"``, ``"torch"``, ``"triton"``, ``"reference"``.
        device: Device of the inputs.

    Returns:
        ``"torch"``, ``"triton"`` or ``"reference"``. Each new (op, choice) is logged once on the
        ``biolm.kernels`` logger with its reason.

    Raises:
        ValueError: Unknown backend name.
        RuntimeError: ``"triton"`` requested but unavailable (the message says why).
    """
    choice, reason = _decide(op, backend, device)
    if (op, choice) not in _DECISIONS:
        _DECISIONS[(op, choice)] = reason
        logger.info("kernel %s: using backend %r (%s)", op, choice, reason)
    return choice


def backend_report(device: torch.device | str | None = None) -> list[tuple[str, str, str]]:
    """What ``"auto"`` picks for each known op, and why (for ``biolm info``).

    Args:
        device: Device to report for; default CUDA when available, else CPU.

    Returns:
        Sorted list of ``(op, backend, reason)``.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return [(op, *_decide(op, "auto", torch.device(device))) for op in sorted(_OPS)]
