"""CPU timings of the biolm mLSTM kernel against the mlstm_kernels chunkwise PyTorch kernels.

Both libraries run in this one process on the same inputs, so the ratios are meaningful even on a
busy machine; absolute times are not. Run ``python benchmarks/kernels_cpu.py [--quick] [--out FILE]``.
The peer (``pip install --no-deps mlstm_kernels einops``) is skipped with a message if absent.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable

import torch

from biolm.kernels import mlstm

PEER_KERNELS = ("chunkwise--native_custbw", "chunkwise--native_autograd")
# (B, H, S, Dk, Dv)
SHAPES = [(1, 4, 1024, 128, 128), (1, 4, 2048, 128, 256), (1, 4, 8192, 64, 64)]
SCALING_HEADS, SCALING_DIM = 4, 64


def load_peer() -> dict[str, Callable] | None:
    """The peer kernels by name, or None (with a message) when mlstm_kernels cannot be imported."""
    try:
        from mlstm_kernels.torch import get_mlstm_kernel
    except Exception as err:  # ImportError, or a missing dependency of the peer
        print(f"[skip] mlstm_kernels not importable ({type(err).__name__}: {err}); timing biolm only.")
        return None
    return {name: get_mlstm_kernel(name) for name in PEER_KERNELS}


def make_inputs(b: int, h: int, s: int, dk: int, dv: int, seed: int = 0) -> list[torch.Tensor]:
    """biolm layout: q, k [B,S,H,Dk], v [B,S,H,Dv], i, f [B,S,H]; gates in a realistic range."""
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(b, s, h, dk, generator=g) for _ in range(2))
    v = torch.randn(b, s, h, dv, generator=g)
    i = 3 * torch.randn(b, s, h, generator=g)
    f = 3 + 2 * torch.randn(b, s, h, generator=g)
    return [q, k, v, i, f]


def biolm_fn(chunk: int) -> Callable:
    return lambda q, k, v, i, f: mlstm(q, k, v, i, f, backend="torch", chunk_size=chunk)


def peer_fn(kernel: Callable, chunk: int) -> Callable:
    """Wraps a peer kernel to take and return the biolm layout (the transposes are timed too)."""

    def run(q, k, v, i, f):
        q, k, v = (x.transpose(1, 2) for x in (q, k, v))
        h = kernel(q, k, v, i.transpose(1, 2), f.transpose(1, 2), chunk_size=chunk, return_last_states=False)
        return h.transpose(1, 2)

    return run


def interleaved_medians(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 2) -> dict[str, float]:
    """Median ms per function, timed round-robin so that load from other processes hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(ts) for name, ts in times.items()}


def time_kernels(
    kernels: dict[str, Callable], inputs: list[torch.Tensor], reps: int, forward: bool = True
) -> dict[str, tuple[float, float]]:
    """Median ms of the forward (no grad; NaN unless ``forward``) and of forward + backward."""

    def fwd(fn: Callable) -> Callable[[], object]:
        def run() -> None:
            with torch.no_grad():
                fn(*inputs)

        return run

    leaves = [x.detach().clone().requires_grad_() for x in inputs]
    grad_h = torch.randn_like(inputs[2])

    def fwd_bwd(fn: Callable) -> Callable[[], object]:
        def run() -> None:
            for x in leaves:
                x.grad = None
            fn(*leaves).backward(grad_h)

        return run

    f = {name: math.nan for name in kernels}
    if forward:
        f = interleaved_medians({name: fwd(fn) for name, fn in kernels.items()}, reps)
    fb = interleaved_medians({name: fwd_bwd(fn) for name, fn in kernels.items()}, reps)
    return {name: (f[name], fb[name]) for name in kernels}


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def compare_table(peer: dict[str, Callable] | None, shapes: list, reps: int, chunk: int) -> list[str]:
    rows = [
        "| B,H,S,Dk,Dv | kernel | fwd ms | fwd+bwd ms | fwd ratio peer/biolm | fwd+bwd ratio peer/biolm |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for shape in shapes:
        inputs = make_inputs(*shape)
        kernels = {"biolm torch": biolm_fn(chunk)}
        kernels.update({name: peer_fn(kernel, chunk) for name, kernel in (peer or {}).items()})
        with torch.no_grad():
            outs = {name: fn(*inputs) for name, fn in kernels.items()}
        timings = time_kernels(kernels, inputs, reps)
        base = timings["biolm torch"]
        tag = ",".join(map(str, shape))
        for name, (fwd, both) in timings.items():
            label = (
                name
                if name == "biolm torch"
                else f"{name} (h rel. diff {rel_diff(outs[name], outs['biolm torch']):.1e})"
            )
            rows.append(
                f"| {tag} | {label} | {fwd:.1f} | {both:.1f} | {fwd / base[0]:.2f} | {both / base[1]:.2f} |"
            )
            print(rows[-1], flush=True)
    return rows


def scaling_table(seqs: list[int], reps: int, chunk: int) -> list[str]:
    rows = [
        f"| S (B=1, H={SCALING_HEADS}, Dk=Dv={SCALING_DIM}) | fwd+bwd ms | us/token | ratio to S={seqs[0]} |",
        "|---:|---:|---:|---:|",
    ]
    first = None
    for s in seqs:
        inputs = make_inputs(1, SCALING_HEADS, s, SCALING_DIM, SCALING_DIM)
        _, both = time_kernels({"biolm": biolm_fn(chunk)}, inputs, reps, forward=False)["biolm"]
        per_token = 1e3 * both / s
        first = first or per_token
        rows.append(f"| {s} | {both:.1f} | {per_token:.2f} | {per_token / first:.2f} |")
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and shapes")
    parser.add_argument("--out", help="also write the tables as markdown to this file")
    parser.add_argument("--chunk", type=int, default=64, help="chunk size for every kernel")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads; 1 gives steadier ratios on a busy machine"
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    reps = 5 if args.quick else 9
    shapes = SHAPES[:1] if args.quick else SHAPES
    seqs = [1024 * 2**j for j in range(4 if args.quick else 7)]
    header = (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, chunk {args.chunk}, "
        f"median of {reps} after warm-up"
    )
    print(header)
    peer = load_peer()
    compare = compare_table(peer, shapes, reps, args.chunk)
    print()
    scaling = scaling_table(seqs, 5, args.chunk)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join([header, "", *compare, "", *scaling, ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
