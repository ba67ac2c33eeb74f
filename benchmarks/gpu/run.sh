#!/usr/bin/env bash
# One script for a lent GPU: Triton kernels against the reference on CUDA, then timings at the TFLA
# protocol against the peers that are importable. Installs nothing; finishes in under 8 minutes.
# Writes benchmarks/results/gpu_<card>.md (or $OUT/gpu_<card>.md when OUT is set).
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out_dir=${OUT:-benchmarks/results}
mkdir -p "$out_dir"
card=$(python3 -c "import torch; print(torch.cuda.get_device_name(0).replace(' ', '_'))") || exit 1
report="$out_dir/gpu_${card}.md"
{
    echo "# GPU kernel run: $card, $(date -u +%Y-%m-%d)"
    echo
    python3 -c "import torch, triton; print(f'torch {torch.__version__}, triton {triton.__version__}')"
    echo
    echo "## Correctness: Triton vs torch path and float64 reference on CUDA"
    echo '```'
    # Parallel workers: most of this phase is compiling kernels (CPU-bound), one shape at a time.
    workers=$(python3 -c "import xdist" 2>/dev/null && echo "-n 8")
    timeout 180 python3 -m pytest -q -m "not slow" -p no:cacheprovider $workers tests/kernels/test_*_triton.py 2>&1 | tee "$out_dir/pytest.log" | tail -20
    echo '```'
    echo
    echo "## Timings (TFLA protocol)"
    # The autotuner prints the tile sizes it picks for each kernel (kept for the next tuning session).
    TRITON_PRINT_AUTOTUNING=1 timeout 270 python3 benchmarks/gpu/kernels_gpu.py
} 2>&1 | tee "$report"
echo "report: $report"
