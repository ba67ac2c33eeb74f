"""Peak memory of prefilling a homolog context (issue 16): a 100-homolog context against the whole
4,501-homolog BLAT_ECOLX MSA, each in a fresh process, with the model of `--model`.

    python benchmarks/context_prefill_memory.py --model runs/protein_context/model

Prints the peak resident memory (VmHWM, after a reset at the start of the prefill) of each and their
ratio; the target is at most 1.3x. The context is read in pieces of `DEFAULT_PREFILL_TOKENS` with the
state passed on, so only the piece, not the context, sets the memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "protein" / "blat"
MSA = DATA / "BLAT_ECOLX_ColabFold_2202.a3m.gz"
SCAN = DATA / "BLAT_ECOLX_Jacquier_2013.csv"


def measure(model_dir: str, members: int) -> dict:
    """Prefill `members` homologs (all of them if more than the MSA has) in this process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from rss import proc_status_kb, reset_peak_rss

    from biolm.evaluation.options import ContextOptions
    from biolm.evaluation.zeroshot_context import draw_context, prefill, read_homologs
    from biolm.io.dms import read_scan
    from biolm.models.io import load

    torch.set_num_threads(2)
    model = load(model_dir)
    scan = read_scan(SCAN)
    options = ContextOptions(MSA, token_budget=1 << 30, max_members=members)
    context = draw_context(read_homologs(options, scan, model.tokenizer), options, 0)
    reset_peak_rss()
    before = proc_status_kb("VmRSS")
    started = time.perf_counter()
    _, _, tokens = prefill(model, context)
    return {
        "members": len(context),
        "tokens": tokens,
        "seconds": time.perf_counter() - started,
        "rss_before_mb": before / 1024,
        "peak_mb": proc_status_kb("VmHWM") / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a causal protein model directory")
    parser.add_argument("--members", type=int, help=argparse.SUPPRESS)  # the child process's job
    args = parser.parse_args()
    if not MSA.is_file():
        print(f"{MSA} is missing: this benchmark needs the shared real data", file=sys.stderr)
        return 2
    if args.members is not None:
        print(json.dumps(measure(args.model, args.members)))
        return 0
    rows = []
    for members in (100, 1 << 20):
        out = subprocess.run(
            [sys.executable, __file__, "--model", args.model, "--members", str(members)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| homologs | tokens | prefill s | tokens/s | RSS before MB | peak RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['members']:,} | {r['tokens']:,} | {r['seconds']:.1f} | {r['tokens'] / r['seconds']:,.0f} "
            f"| {r['rss_before_mb']:.0f} | {r['peak_mb']:.0f} |"
        )
    print(f"peak ratio (all / 100): {rows[1]['peak_mb'] / rows[0]['peak_mb']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
