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
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from triton.testing import do_bench

from biolm.kernels import mlstm

TOKENS, HEADS, DK, DV = 65_536, 16, 128, 256
SEQS = (2048, 8192, 32768)
DEVICE = "cuda"


def copy_bandwidth() -> float:
    """Bytes per second of a large device-to-device copy (read + write counted)."""
    x = torch.empty(2**30, dtype=torch.uint8, device=DEVICE)
    ms = do_bench(lambda: x.clone())
    return 2 * x.numel() / (ms * 1e-3)


def min_bytes(b: int, s: int, backward: bool) -> int:
    """q, k, v, i, f read and h written once (bf16 tensors, fp32 gates); backward also reads dh and
    writes dq, dk, dv, di, df."""
    tokens = b * s * HEADS
    forward = tokens * (2 * (2 * DK + 2 * DV) + 2 * 4)
    return forward * (2 if backward else 1) + (tokens * 2 * DV if backward else 0)


@dataclass
class Candidate:
    """A kernel taking (q, k, v, i, f); ``head_first`` kernels take [B, H, S, D] tensors and get inputs
    in that layout, made contiguous before timing, so no kernel pays for another's layout."""

    fn: Callable
    head_first: bool = False


def candidates() -> dict[str, Candidate]:
    def biolm(backend: str) -> Candidate:
        return Candidate(lambda q, k, v, i, f: mlstm(q, k, v, i, f, backend=backend, chunk_size=64))

    found = {"biolm triton": biolm("triton"), "biolm torch": biolm("torch")}
    try:
        from mlstm_kernels.torch import get_mlstm_kernel

        tfla = get_mlstm_kernel("chunkwise--triton_xl_chunk")
        found["mlstm_kernels triton_xl_chunk"] = Candidate(
            lambda q, k, v, i, f: tfla(q, k, v, i, f, chunk_size=128), head_first=True
        )
    except Exception as err:
        print(f"- mlstm_kernels not importable ({type(err).__name__}: {err}); TFLA skipped")
    try:
        from fla.ops.simple_gla import chunk_simple_gla

        found["fla chunk_simple_gla"] = Candidate(
            lambda q, k, v, i, f: chunk_simple_gla(q, k, v, g=F.logsigmoid(f.float()))[0]
        )
    except Exception as err:
        print(f"- flash-linear-attention not importable ({type(err).__name__}: {err}); skipped")
    return found


def layout(xs: list[torch.Tensor], head_first: bool) -> list[torch.Tensor]:
    """Leaf copies of the inputs in a kernel's layout ([B, S, H, ...] or [B, H, S, ...])."""
    if not head_first:
        return xs
    return [x.detach().transpose(1, 2).contiguous().requires_grad_(x.requires_grad) for x in xs]


def from_layout(x: torch.Tensor, head_first: bool) -> torch.Tensor:
    return x.transpose(1, 2) if head_first else x


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def agreement(
    kernels: dict[str, Candidate], inputs: list[torch.Tensor], grad: torch.Tensor
) -> dict[str, str]:
    """Each kernel's h and input gradients against biolm's torch path at the same inputs (relative
    RMS error). Peers compute the same mLSTM up to their conventions (eps, initial stabilizer) or a
    different function (gated linear attention has no normalizer), so their numbers show how close the
    functions are, not only rounding."""

    def run(cand: Candidate):
        xs = layout(inputs, cand.head_first)
        h = cand.fn(*xs)
        h.backward(layout([grad], cand.head_first)[0])
        grads = [from_layout(x.grad, cand.head_first) for x in xs]
        for x in inputs:
            x.grad = None
        return from_layout(h.detach(), cand.head_first), grads

    h_ref, g_ref = run(kernels["biolm torch"])
    out = {}
    for name, cand in kernels.items():
        if name == "biolm torch":
            continue
        try:
            h, g = run(cand)
            grads = " ".join(f"{rel_err(a, b):.0e}" for a, b in zip(g, g_ref, strict=True))
            out[name] = f"{rel_err(h, h_ref):.1e} / {grads}"
        except Exception as err:
            out[name] = f"failed: {type(err).__name__}: {str(err)[:60]}"
    return out


def time_one(cand: Candidate, inputs: list[torch.Tensor], grad: torch.Tensor) -> tuple[float, float]:
    """Median ms of the forward pass (no autograd) and of forward + backward."""
    fn, inputs, grad = cand.fn, layout(inputs, cand.head_first), layout([grad], cand.head_first)[0]
    with torch.no_grad():
        forward = do_bench(lambda: fn(*inputs))
    both = do_bench(lambda: fn(*inputs).backward(grad), grad_to_none=inputs)
    return forward, both


def shape_inputs(b: int, s: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    q = torch.randn(b, s, HEADS, DK, device=DEVICE, dtype=torch.bfloat16)
    k = torch.randn_like(q)
    v = torch.randn(b, s, HEADS, DV, device=DEVICE, dtype=torch.bfloat16)
    i = torch.randn(b, s, HEADS, device=DEVICE)
    f = torch.randn(b, s, HEADS, device=DEVICE) + 3.0
    grad = torch.randn(b, s, HEADS, DV, device=DEVICE, dtype=torch.bfloat16)
    return [x.requires_grad_() for x in (q, k, v, i, f)], grad


def main() -> None:
    torch.manual_seed(0)
    bandwidth = copy_bandwidth()
    print(f"\ndevice {torch.cuda.get_device_name(0)}; measured copy bandwidth {bandwidth / 1e12:.2f} TB/s\n")
    kernels = candidates()
    columns = ["S", "B", "kernel", "fwd ms", "fwd % roof", "fwd+bwd ms", "fwd+bwd % roof"]
    print("| " + " | ".join([*columns, "vs torch: h / dq dk dv di df"]) + " |")
    print("|---|---|---|---|---|---|---|---|")
    for s in SEQS:
        b = TOKENS // s
        inputs, grad = shape_inputs(b, s)
        errors = agreement(kernels, inputs, grad)
        for name, cand in kernels.items():
            try:
                fwd, both = time_one(cand, inputs, grad)
            except Exception as err:  # one failing kernel must not hide the others
                print(f"| {s} | {b} | {name} | failed: {type(err).__name__}: {str(err)[:80]} | | | | |")
                continue
            roof_f = min_bytes(b, s, False) / (fwd * 1e-3) / bandwidth * 100
            roof_b = min_bytes(b, s, True) / (both * 1e-3) / bandwidth * 100
            err = errors.get(name, "reference")
            row = f"| {s} | {b} | {name} | {fwd:.2f} | {roof_f:.0f} | {both:.2f} | {roof_b:.0f} | {err} |"
            print(row, flush=True)
        del inputs, grad
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
