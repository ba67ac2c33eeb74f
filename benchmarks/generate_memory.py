"""Peak memory of decoding: 100k generated tokens against 1k, batch 1, with a small mLSTM model.

The recurrent state of an mLSTM model has a fixed size, so decoding memory should not grow with the
number of generated tokens; only the generated ids themselves (8 bytes each) do. This script checks it
with a small randomly initialised DNA model (built here, nothing downloaded), no stop token (every
sample runs to the limit), special tokens banned. Each case runs in a fresh subprocess; memory is the
peak resident set of that process during `generate` (/proc/self/status VmHWM, reset through
/proc/self/clear_refs after the model exists and a short warm-up ran, Linux only), and "rise" is that
peak minus the resident size just before.

    python benchmarks/generate_memory.py                 # both cases, a markdown table
    python benchmarks/generate_memory.py --case 1000     # one case, JSON (used by the table)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from rss import proc_status_kb, reset_peak_rss  # benchmarks/rss.py, beside this script

TOKENS = (1_000, 100_000)
MODEL = {"d_model": 64, "n_layers": 2, "num_heads": 4}  # tiny: 100k single-row steps in ~2 minutes


def run_case(tokens: int) -> dict:
    """Generates one sample of `tokens` tokens in this process; meant for a fresh subprocess."""
    import numpy as np
    import torch

    from biolm.inference.sample_tokens import prefill, sample_tokens, state_numel
    from biolm.models import BioLM, ModelConfig
    from biolm.tokenizers import DNATokenizer

    torch.manual_seed(0)
    tokenizer = DNATokenizer()
    model = BioLM(ModelConfig(vocab_size=tokenizer.vocab_size, **MODEL)).eval()
    model.tokenizer = tokenizer
    settings = dict(stop_ids=[], banned_ids=tokenizer.special_ids, progress=False)
    sample_tokens(model, 1, max_new_tokens=64, **settings)  # warm-up: kernels, allocator
    reset_peak_rss()
    before_kb = proc_status_kb("VmRSS")
    t0 = time.perf_counter()
    (sample,) = sample_tokens(model, 1, max_new_tokens=tokens, seed=1, **settings)
    seconds = time.perf_counter() - t0
    peak_kb = proc_status_kb("VmHWM")
    assert len(sample) == tokens and np.isin(sample, np.arange(6, 11)).all()
    state = prefill(model, [tokenizer.bos_id]).state
    return {
        "tokens": tokens,
        "params": model.num_parameters(),
        "state_kb": state_numel(state) * 4 / 1024,
        "seconds": seconds,
        "peak_mb": peak_kb / 1024,
        "rise_mb": (peak_kb - before_kb) / 1024,
        "ids_mb": sample.nbytes / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", type=int, help="generate this many tokens here and print JSON")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.case:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(run_case(args.case)))
        return 0
    results = {}
    for tokens in TOKENS:
        cmd = [sys.executable, os.path.abspath(__file__), "--case", str(tokens)]
        cmd += ["--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        results[tokens] = json.loads(proc.stdout.strip().splitlines()[-1])
    small, big = (results[n] for n in TOKENS)
    print(
        f"model: {MODEL} ({small['params']:,} parameters, state {small['state_kb']:.1f} kB), batch 1, "
        f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f}\n"
    )
    print("| generated tokens | peak RSS MB | rise in decoding MB | of which ids MB | seconds | tokens/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in (small, big):
        print(
            f"| {r['tokens']:,} | {r['peak_mb']:,.1f} | {r['rise_mb']:,.2f} | {r['ids_mb']:,.2f} "
            f"| {r['seconds']:.1f} | {r['tokens'] / r['seconds']:,.0f} |"
        )
    print(
        f"\n100k / 1k tokens: peak RSS x{big['peak_mb'] / small['peak_mb']:.3f}, "
        f"+{big['peak_mb'] - small['peak_mb']:.1f} MB for 100x the tokens"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
