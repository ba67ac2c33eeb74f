"""Peak memory of `biolm embed` on one long DNA sequence: 1 Mbp against 10 kbp.

A causal model reads a long sequence `chunk_len` positions at a time with its recurrent state carried
over, so the memory of the model's work should not grow with the sequence; only the input itself (the
token ids, 8 bytes per base, held twice: as numpy ids and as the padded batch) does. This script checks
it with a small randomly initialised DNA model (built here, nothing downloaded), mean pooling, the
default chunk length. Each case runs in a fresh subprocess; memory is the peak resident set of that
process during the embedding (/proc/self/status VmHWM, reset through /proc/self/clear_refs after the
model and the sequence exist, Linux only), and "rise" is that peak minus the resident size just before.

    python benchmarks/embed_memory.py                  # both cases, a markdown table
    python benchmarks/embed_memory.py --case 10000     # one case, JSON (used by the table)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from rss import proc_status_kb, reset_peak_rss  # benchmarks/rss.py, beside this script

LENGTHS = (10_000, 1_000_000)
MODEL = {"d_model": 128, "n_layers": 4, "num_heads": 4}


def run_case(length: int, chunk_len: int) -> dict:
    """Embeds one random sequence of `length` bases in this process; meant for a fresh subprocess."""
    import numpy as np
    import torch

    from biolm.inference.embed_ids import embed_ids
    from biolm.models import BioLM, ModelConfig
    from biolm.tokenizers import DNATokenizer

    torch.manual_seed(0)
    tokenizer = DNATokenizer()
    model = BioLM(ModelConfig(vocab_size=tokenizer.vocab_size, **MODEL)).eval()
    model.tokenizer = tokenizer
    ids = tokenizer.encode("".join(np.random.default_rng(0).choice(list("ACGT"), size=length)))
    embed_ids(model, [ids[:chunk_len]], chunk_len=chunk_len, progress=False)  # warm-up: kernels, allocator
    reset_peak_rss()
    before_kb = proc_status_kb("VmRSS")
    t0 = time.perf_counter()
    vector = embed_ids(model, [ids], chunk_len=chunk_len, progress=False)
    seconds = time.perf_counter() - t0
    assert vector.shape == (1, MODEL["d_model"]) and np.isfinite(vector).all()
    peak_kb = proc_status_kb("VmHWM")
    return {
        "length": length,
        "params": model.num_parameters(),
        "seconds": seconds,
        "peak_mb": peak_kb / 1024,
        "rise_mb": (peak_kb - before_kb) / 1024,
        "input_mb": 2 * ids.nbytes / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", type=int, help="run one sequence length here and print JSON")
    parser.add_argument("--chunk-len", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.case:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(run_case(args.case, args.chunk_len)))
        return 0
    results = {}
    for length in LENGTHS:
        cmd = [sys.executable, os.path.abspath(__file__), "--case", str(length)]
        cmd += ["--chunk-len", str(args.chunk_len), "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        results[length] = json.loads(proc.stdout.strip().splitlines()[-1])
    small, big = (results[n] for n in LENGTHS)
    print(
        f"model: {MODEL} ({small['params']:,} parameters), mean pooling, chunk_len {args.chunk_len}, "
        f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}\n"
    )
    print("| sequence | peak RSS MB | rise during embedding MB | of which input ids MB | seconds | bases/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in (small, big):
        print(
            f"| {r['length']:,} bp | {r['peak_mb']:,.0f} | {r['rise_mb']:,.1f} | {r['input_mb']:,.1f} "
            f"| {r['seconds']:.1f} | {r['length'] / r['seconds']:,.0f} |"
        )
    print(
        f"\n1 Mbp / 10 kbp: peak RSS x{big['peak_mb'] / small['peak_mb']:.2f}, "
        f"rise x{big['rise_mb'] / max(small['rise_mb'], 1e-9):.1f} for 100x the bases"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
