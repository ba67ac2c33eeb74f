"""Training throughput of whole models on CPU: biolm against the xlstm package's xLSTMLarge, and biolm's
xLSTM against its Transformer baseline from 1k to 32k tokens of context.

A training step is forward, next-token cross-entropy, backward and an AdamW step, float32, on
``--threads`` threads (default 2). Tokens/s = batch x context / median step time.

Table 1 (peer): at d_model 256, 4 blocks, 4 heads, vocabulary 16, batch 8 x 1024, the xlstm package's
``xLSTMLarge`` (chunkwise--native_custbw kernels) against biolm. The like-for-like row is biolm's ``x``
block, the same design as xLSTMLarge's (the xLSTM-7B block: mLSTM at d_model with q/k at half width,
soft-capped gates, output gate, then a SwiGLU feed-forward of factor 8/3) with the same parameter count
(3,231,008; tests/models/test_xlstm7b.py checks it). biolm's ``m`` block, the xLSTM-paper
pre-up-projection block that the Bio-xLSTM papers use, is timed too (proj_factor 2, no feed-forward;
half the parameters). Each biolm model is timed round-robin with the peer, in a subprocess of its
own, so that load from other processes and the allocator's state hit both alike. A last row times,
round-robin with the peer likewise, only the x model's matmuls (warm, whole-tensor, into reused
buffers) and biolm's mLSTM kernel: a lower bound of any x-model step built on these matmuls and this
kernel, so its ratio to the peer is the ceiling of such an implementation.

Table 2 (context): the models of the recipes ``dna/xlstm_2m_*`` (pattern m) and ``dna/transformer_2m_*``
(pattern t: softmax attention with RoPE), same d_model and depth, ~1.65M parameters each, at 1k (batch
8), 8k and 32k (batch 1). Each cell runs in a fresh subprocess. Memory: the peak resident set of that
process during its steps (/proc/self/status VmHWM, reset through /proc/self/clear_refs just before the
first step) and its rise over the resident size at that moment (activations, gradients, optimizer
state, allocator caches). tracemalloc does not see torch's allocations, hence the resident set.

    python benchmarks/model_cpu.py [--quick] [--out FILE] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from rss import proc_status_kb, reset_peak_rss  # benchmarks/rss.py, beside this script

from biolm.kernels.mlstm import mlstm
from biolm.models.backbone import BioLM
from biolm.models.config import ModelConfig

D_MODEL, BLOCKS, HEADS, VOCAB, BATCH, CONTEXT = 256, 4, 4, 16, 8, 1024
PEER_REPORTED_TOKENS_PER_S = 6232  # the measurement of xLSTMLarge at this config, this machine
CONTEXT_CELLS = [(1024, 8), (8192, 1), (32768, 1)]  # (context, batch)
QUICK_CONTEXT_CELLS = [(1024, 8), (8192, 1)]
LR = 1e-3


def build_peer() -> torch.nn.Module | None:
    """xLSTMLarge at the benchmark config, or None (with a message) when xlstm/mlstm_kernels are missing."""
    try:
        from xlstm.xlstm_large.model import xLSTMLarge, xLSTMLargeConfig
    except Exception as err:  # ImportError, or a missing dependency of the peer
        print(f"[skip] xlstm.xlstm_large not importable ({type(err).__name__}: {err}); timing biolm only.")
        return None
    config = xLSTMLargeConfig(
        embedding_dim=D_MODEL,
        num_heads=HEADS,
        num_blocks=BLOCKS,
        vocab_size=VOCAB,
        chunkwise_kernel="chunkwise--native_custbw",
        sequence_kernel="native_sequence__native",
        step_kernel="native",
        return_last_states=True,
        mode="train",
    )
    return xLSTMLarge(config).float()


def biolm_model(**overrides) -> BioLM:
    config = dict(vocab_size=VOCAB, d_model=D_MODEL, n_layers=BLOCKS, pattern="m", num_heads=HEADS)
    config.update(overrides)
    return BioLM(ModelConfig(**config))


def logits_of(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    out = model(ids)
    if isinstance(out, tuple):  # xLSTMLarge with return_last_states=True: (logits, state)
        return out[0]
    return out.logits


def train_step(model: torch.nn.Module, ids: torch.Tensor) -> Callable[[], None]:
    """One forward + cross-entropy + backward + AdamW step on `ids` [B, S]."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.1)
    targets = ids[:, 1:].reshape(-1)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        logits = logits_of(model, ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets)
        loss.backward()
        optimizer.step()

    return step


def interleaved_medians(steps: dict[str, Callable[[], None]], reps: int, warmup: int) -> dict[str, float]:
    """Median seconds per step of each function, timed round-robin."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(reps):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


# Each biolm model of table 1, with its ModelConfig overrides of biolm_model().
X_OVERRIDES = dict(pattern="x", ffn_factor=8 / 3, tie_embeddings=False)
TABLE1_MODELS = {
    "biolm x (xLSTM-7B block, like for like)": X_OVERRIDES,
    "biolm m, proj_factor 2 (paper block)": dict(proj_factor=2.0),
}
# Not a model: the least any implementation of the x model that uses these matmuls and this mLSTM
# kernel can cost (see lower_bound_step); its ratio to the peer is the ceiling of such an implementation.
LOWER_BOUND = "lower bound: the x model's matmuls + biolm's mLSTM kernel, nothing else"


def lower_bound_step(config: ModelConfig, batch: int, context: int) -> Callable[[], None]:
    """The matmuls of one training step of an x model and its mLSTM kernel calls, and nothing else.

    Per layer: the fused input projection [d -> 2 qk_dim + 2 v_dim + 2 H], the output projection
    [v_dim -> d], the SwiGLU [d -> 2 F] and [F -> d], each as its forward (x W^T), input gradient
    (dy W) and weight gradient (dy^T x) over all batch x context rows, as whole-tensor matmuls into
    buffers reused from step to step (no allocation, warm operands: faster than any real model can
    run them); plus the head. Then the mLSTM kernel forward and backward per layer at the model's
    head sizes. No norm, activation, gate, residual, loss or optimizer: everything a real step adds.
    """
    rows, d, heads = batch * context, config.d_model, config.num_heads
    layer = [(d, 2 * config.qk_dim + 2 * config.v_dim + 2 * heads), (config.v_dim, d)]
    layer += [(d, 2 * config.ffn_dim), (config.ffn_dim, d)]
    shapes = layer * config.n_layers + [(d, config.vocab_size)]
    buffers = [(torch.randn(rows, k), torch.randn(n, k), torch.randn(rows, n)) for k, n in shapes]
    outs = [(torch.empty(rows, n), torch.empty(rows, k), torch.empty(n, k)) for k, n in shapes]

    def qkv(dim: int) -> torch.Tensor:
        return torch.randn(batch, context, heads, dim // heads, requires_grad=True)

    q, k, v = qkv(config.qk_dim), qkv(config.qk_dim), qkv(config.v_dim)
    i = torch.randn(batch, context, heads, requires_grad=True)
    f = (torch.randn(batch, context, heads) + 3).requires_grad_()
    d_h = torch.randn(batch, context, heads, config.v_dim // heads)

    def step() -> None:
        for (x, w, dy), (y, dx, dw) in zip(buffers, outs, strict=True):
            torch.mm(x, w.t(), out=y)
            torch.mm(dy, w, out=dx)
            torch.mm(dy.t(), x, out=dw)
        for _ in range(config.n_layers):
            mlstm(q, k, v, i, f, chunk_size=config.chunk_size, backend="torch").backward(d_h)

    return step


def run_pair(name: str, reps: int, warmup: int) -> dict:
    """Times the peer and one biolm model round-robin in this process; meant for a fresh subprocess,
    so that the allocator state another model leaves behind does not hit this pair."""
    torch.manual_seed(0)
    ids = torch.randint(0, VOCAB, (BATCH, CONTEXT))
    model = biolm_model(**(X_OVERRIDES if name == LOWER_BOUND else TABLE1_MODELS[name]))
    if name == LOWER_BOUND:
        steps = {"biolm": lower_bound_step(model.config, BATCH, CONTEXT)}
    else:
        steps = {"biolm": train_step(model, ids)}
    peer = build_peer()
    if peer is not None:
        steps["peer"] = train_step(peer, ids)
    seconds = interleaved_medians(steps, reps, warmup)
    return {
        "seconds": seconds["biolm"],
        "params": model.num_parameters(),
        "peer_seconds": seconds.get("peer"),
        "peer_params": sum(p.numel() for p in peer.parameters()) if peer is not None else None,
    }


def peer_table(reps: int, warmup: int, threads: int) -> list[str]:
    rows = [
        f"| model (d {D_MODEL}, {BLOCKS} blocks, {HEADS} heads, batch {BATCH} x {CONTEXT}) | parameters "
        "| ms / step | tokens/s | xLSTMLarge ms / step, same rounds | ratio to xLSTMLarge |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in [*TABLE1_MODELS, LOWER_BOUND]:
        cmd = [sys.executable, os.path.abspath(__file__), "--pair", name, "--threads", str(threads)]
        cmd += ["--reps", str(reps), "--warmup", str(warmup)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            print(f"[fail] {name}: {tail}", flush=True)
            rows.append(f"| {name} | | failed | | | |")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        peer_ms = f"{1e3 * r['peer_seconds']:.0f}" if r["peer_seconds"] else "n/a"
        ratio = f"{r['peer_seconds'] / r['seconds']:.2f}" if r["peer_seconds"] else "n/a"
        tps = BATCH * CONTEXT / r["seconds"]
        rows.append(
            f"| {name} | {r['params']:,} | {1e3 * r['seconds']:.0f} | {tps:,.0f} | {peer_ms} | {ratio} |"
        )
        print(rows[-1], flush=True)
    return rows


def recipe_model(kind: str) -> BioLM:
    """The model of dna/xlstm_2m_1k (kind "m") or dna/transformer_2m_1k (kind "t")."""
    from biolm.configs import load_config, packaged_config, to_train_config

    name = {"m": "xlstm_2m_1k", "t": "transformer_2m_1k"}[kind]
    return BioLM(to_train_config(load_config(packaged_config("dna", name))).model)


def run_cell(kind: str, context: int, batch: int, reps: int, warmup: int) -> dict:
    """Times one (model, context) in this process; meant to run in a fresh subprocess."""
    torch.manual_seed(0)
    model = recipe_model(kind)
    ids = torch.randint(0, model.config.vocab_size, (batch, context))
    step = train_step(model, ids)
    reset_peak_rss()
    rss_before_kb = proc_status_kb("VmRSS")
    t0 = time.perf_counter()
    step()  # first step: allocates optimizer state; timed too so that very slow cells can stop here
    first = time.perf_counter() - t0
    # A cell slower than 30 s per step is timed by its first step only (its overhead is then negligible).
    if first > 30:
        times = [first]
    else:
        for _ in range(max(0, warmup - 1)):
            step()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    peak_kb = proc_status_kb("VmHWM")
    seconds = statistics.median(times)
    return {
        "kind": kind,
        "context": context,
        "batch": batch,
        "params": model.num_parameters(),
        "seconds": seconds,
        "steps_timed": len(times),
        "tokens_per_s": batch * context / seconds,
        "peak_mb": peak_kb / 1024,
        "step_mb": (peak_kb - rss_before_kb) / 1024,
    }


def context_table(cells: list[tuple[int, int]], reps: int, warmup: int, threads: int) -> list[str]:
    rows = [
        "| context x batch | model | parameters | s / step (steps timed) | tokens/s | peak RSS MB "
        "| rise in step MB | m / t tokens/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for context, batch in cells:
        results = {}
        for kind in ("m", "t"):
            cmd = [sys.executable, os.path.abspath(__file__), "--cell", kind, str(context), str(batch)]
            cmd += ["--threads", str(threads), "--reps", str(reps), "--warmup", str(warmup)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                print(f"[fail] {kind} at {context}: {tail}", flush=True)
                results[kind] = None
                continue
            results[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
        for kind, label in (("m", "biolm xLSTM (m)"), ("t", "biolm Transformer (t)")):
            r = results[kind]
            if r is None:
                rows.append(f"| {context:,} x {batch} | {label} | | failed | | | | |")
                continue
            ratio = ""
            if kind == "m" and results["t"] is not None:
                ratio = f"{r['tokens_per_s'] / results['t']['tokens_per_s']:.2f}"
            rows.append(
                f"| {context:,} x {batch} | {label} | {r['params']:,} "
                f"| {r['seconds']:.2f} ({r['steps_timed']}) | {r['tokens_per_s']:,.0f} "
                f"| {r['peak_mb']:,.0f} | {r['step_mb']:,.0f} | {ratio} |"
            )
            print(rows[-1], flush=True)
    return rows


def load_note() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min) on {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer steps, contexts 1k and 8k")
    parser.add_argument("--out", help="also write the tables as markdown to this file")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--reps", type=int, help="timed steps per model (default 7, quick 3)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    parser.add_argument("--skip-peer", action="store_true", help="only the context table")
    parser.add_argument("--skip-context", action="store_true", help="only the peer table")
    parser.add_argument("--cell", nargs=3, metavar=("KIND", "CONTEXT", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--pair", choices=[*TABLE1_MODELS, LOWER_BOUND], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    reps = args.reps or (3 if args.quick else 7)
    if args.cell:
        kind, context, batch = args.cell[0], int(args.cell[1]), int(args.cell[2])
        print(json.dumps(run_cell(kind, context, batch, reps, args.warmup)))
        return 0
    if args.pair:
        print(json.dumps(run_pair(args.pair, reps, args.warmup)))
        return 0

    header = (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, AdamW, median of {reps} "
        f"steps after {args.warmup} warm-up; {load_note()} at start"
    )
    print(header, flush=True)
    out = [header, ""]
    if not args.skip_peer:
        out += peer_table(reps, args.warmup, args.threads)
        note = f"(The issue reports {PEER_REPORTED_TOKENS_PER_S:,} tokens/s for xLSTMLarge on this machine.)"
        out += ["", note]
        print()
    if not args.skip_context:
        cells = QUICK_CONTEXT_CELLS if args.quick else CONTEXT_CELLS
        out += ["", *context_table(cells, reps, args.warmup, args.threads)]
    out += ["", f"{load_note()} at end"]
    print(out[-1])
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
