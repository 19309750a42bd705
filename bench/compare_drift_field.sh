#!/usr/bin/env bash
# Drift field (docs/method.md §2, float32, 3 temperatures) on workloads W1-W3: drift's
# plain and fused kernels and the GEMM floor (bench_drift_field), then the same
# math in PyTorch eager and torch.compile (bench/py/compare_drift_field.py), in
# one run with the same thread count; prints one table with the ratios, then
# the peak-memory growth of plain and fused on W2 (separate processes).
#   bash bench/compare_drift_field.sh [BUILD_DIR] [THREADS]
# The fused kernel runs its copy for the best instruction set of this CPU;
# DRIFT_FUSED_ISA=v4|v3|default forces one (the table names the copy and the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
THREADS=${2:-$(nproc)}
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
json=$(mktemp)
trap 'rm -f "$json"' EXIT
DRIFT_NUM_THREADS=$THREADS "$BUILD/bin/bench_drift_field" --benchmark_format=json \
  --benchmark_min_time=1s --benchmark_repetitions=1 >"$json" 2>/dev/null
.venv/bin/python bench/py/compare_drift_field.py --threads "$THREADS" --cpp-json "$json"
for impl in plain fused; do
  DRIFT_NUM_THREADS=$THREADS "$BUILD/bin/bench_drift_field" --peak_rss=$impl:W2
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
