"""sLSTM on CPU: biolm's fused PyTorch path against the xlstm package's PyTorch ("vanilla") sLSTM cell.

Both compute the same recurrence (exponential input gate, sigmoid forget gate in log space, max
stabilizer, block-diagonal recurrent weights per head), float32, on 2 threads. Prints the median time
of forward and forward+backward for each and the ratio xlstm / biolm (above 1: biolm is faster).

    python benchmarks/slstm_cpu.py [--quick] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from biolm.kernels import slstm


def median_time(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def biolm_case(B: int, S: int, H: int, D: int):
    gates = (torch.randn(B, S, H, 4, D) * 0.5).requires_grad_()
    R = (torch.randn(H, 4, D, D) * D**-0.5).requires_grad_()
    bias = torch.zeros(H, 4, D, requires_grad=True)

    def forward():
        with torch.no_grad():
            slstm(gates, R, bias=bias, backend="torch")

    def forward_backward():
        slstm(gates, R, bias=bias, backend="torch").sum().backward()

    return forward, forward_backward


def xlstm_case(B: int, S: int, H: int, D: int):
    from xlstm.blocks.slstm.cell import sLSTMCell_vanilla, sLSTMCellConfig

    config = sLSTMCellConfig(hidden_size=H * D, num_heads=H, backend="vanilla", dtype="float32")
    cell = sLSTMCell_vanilla(config)
    x = (torch.randn(B, S, 4 * H * D) * 0.5).requires_grad_()

    def forward():
        with torch.no_grad():
            cell(x)

    def forward_backward():
        cell(x)[0].sum().backward()

    return forward, forward_backward


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--quick", action="store_true", help="one small shape, 3 repetitions")
    parser.add_argument("--out", help="also write the table (markdown) to this file")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    reps = 3 if args.quick else 5
    shapes = [(8, 128, 4, 64)] if args.quick else [(8, 256, 4, 64), (8, 1024, 4, 64), (4, 512, 4, 128)]
    try:
        import xlstm.blocks.slstm.cell  # noqa: F401

        have_peer = True
    except Exception as err:  # the peer is optional: pip install biolm[bench]
        print(f"xlstm not importable ({type(err).__name__}: {err}); timing biolm only")
        have_peer = False

    lines = [
        "| B, S, H, D | biolm fwd ms | xlstm fwd ms | ratio | biolm fwd+bwd ms | xlstm fwd+bwd ms | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    print(lines[0])
    for B, S, H, D in shapes:
        ours = [median_time(fn, reps) * 1e3 for fn in biolm_case(B, S, H, D)]
        theirs = [median_time(fn, reps) * 1e3 for fn in xlstm_case(B, S, H, D)] if have_peer else [None, None]
        cells = [f"{B}, {S}, {H}, {D}"]
        for mine, peer in zip(ours, theirs, strict=True):
            cells += [f"{mine:.1f}", "n/a" if peer is None else f"{peer:.1f}"]
            cells += ["n/a" if peer is None else f"{peer / mine:.2f}x"]
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
