"""mLSTM forward and forward+backward on a GPU at the TFLA protocol, against peers when importable.

B·S = 65,536 tokens, H = 16, Dk = 128, Dv = 256, bfloat16, S in {2k, 8k, 32k}. Candidates: biolm's
Triton kernels, biolm's PyTorch chunkwise path, mlstm_kernels `chunkwise--triton_xl_chunk` (TFLA) and
flash-linear-attention `chunk_simple_gla` (gated linear attention without the mLSTM normalizer). Times
are medians from `triton.testing.do_bench`. The memory-roofline fraction divides the minimum bytes a
kernel must move (inputs read and outputs written once) by the time and by the device-to-device copy
bandwidth measured here.

Run through benchmarks/gpu/run.sh.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from triton.testing import do_bench

from biolm.kernels import mlstm

TOKENS, HEADS, DK, DV = 65_536, 16, 128, 256
SEQS = (2048, 8192, 32768)


def copy_bandwidth() -> float:
    """Bytes per second of a large device-to-device copy (read + write counted)."""
    x = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    ms = do_bench(lambda: x.clone())
    return 2 * x.numel() / (ms * 1e-3)


def min_bytes(b: int, s: int, backward: bool) -> int:
    """q, k, v, i, f read and h written once (bf16 tensors, fp32 gates); backward also reads dh and
    writes dq, dk, dv, di, df."""
    tokens = b * s * HEADS
    forward = tokens * (2 * (2 * DK + 2 * DV) + 2 * 4)
    return forward * (2 if backward else 1) + (tokens * 2 * DV if backward else 0)


def candidates() -> dict[str, Callable]:
    found: dict[str, Callable] = {
        "biolm triton": lambda q, k, v, i, f: mlstm(q, k, v, i, f, backend="triton", chunk_size=64),
        "biolm torch": lambda q, k, v, i, f: mlstm(q, k, v, i, f, backend="torch", chunk_size=64),
    }
    try:
        from mlstm_kernels.torch import get_mlstm_kernel

        tfla = get_mlstm_kernel("chunkwise--triton_xl_chunk")

        def run_tfla(q, k, v, i, f):
            q, k, v = (x.transpose(1, 2) for x in (q, k, v))
            return tfla(q, k, v, i.transpose(1, 2), f.transpose(1, 2), chunk_size=128).transpose(1, 2)

        found["mlstm_kernels triton_xl_chunk"] = run_tfla
    except Exception as err:
        print(f"- mlstm_kernels not importable ({type(err).__name__}); TFLA skipped")
    try:
        from fla.ops.simple_gla import chunk_simple_gla

        def run_fla(q, k, v, i, f):
            return chunk_simple_gla(q, k, v, g=F.logsigmoid(f.float()))[0]

        found["fla chunk_simple_gla"] = run_fla
    except Exception as err:
        print(f"- flash-linear-attention not importable ({type(err).__name__}); chunk_simple_gla skipped")
    return found


def time_one(fn: Callable, inputs: list[torch.Tensor], grad: torch.Tensor) -> tuple[float, float]:
    """Median ms of the forward pass (no autograd) and of forward + backward."""
    with torch.no_grad():
        forward = do_bench(lambda: fn(*inputs))
    both = do_bench(lambda: fn(*inputs).backward(grad), grad_to_none=inputs)
    return forward, both


def shape_inputs(b: int, s: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    q = torch.randn(b, s, HEADS, DK, device="cuda", dtype=torch.bfloat16)
    k = torch.randn_like(q)
    v = torch.randn(b, s, HEADS, DV, device="cuda", dtype=torch.bfloat16)
    i = torch.randn(b, s, HEADS, device="cuda")
    f = torch.randn(b, s, HEADS, device="cuda") + 3.0
    grad = torch.randn(b, s, HEADS, DV, device="cuda", dtype=torch.bfloat16)
    return [x.requires_grad_() for x in (q, k, v, i, f)], grad


def main() -> None:
    torch.manual_seed(0)
    bandwidth = copy_bandwidth()
    print(f"\ndevice {torch.cuda.get_device_name(0)}; measured copy bandwidth {bandwidth / 1e12:.2f} TB/s\n")
    print("| S | B | kernel | fwd ms | fwd % roofline | fwd+bwd ms | fwd+bwd % roofline |")
    print("|---|---|---|---|---|---|---|")
    kernels = candidates()
    for s in SEQS:
        b = TOKENS // s
        inputs, grad = shape_inputs(b, s)
        for name, fn in kernels.items():
            try:
                fwd, both = time_one(fn, inputs, grad)
            except Exception as err:  # one failing kernel must not hide the others
                print(f"| {s} | {b} | {name} | failed: {type(err).__name__}: {str(err)[:80]} | | | |")
                continue
            roof_f = min_bytes(b, s, False) / (fwd * 1e-3) / bandwidth * 100
            roof_b = min_bytes(b, s, True) / (both * 1e-3) / bandwidth * 100
            row = f"| {s} | {b} | {name} | {fwd:.2f} | {roof_f:.0f} | {both:.2f} | {roof_b:.0f} |"
            print(row, flush=True)
        del inputs, grad
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
