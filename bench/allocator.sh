#!/usr/bin/env bash
# The C allocator's settings (framework/src/runtime/allocator.hpp) on a real
# step: bench/experiments/allocator_step.toml (fmnist_best's step in the cell
# that builds the feature cache) with glibc's defaults (DRIFT_ALLOCATOR=glibc)
# and with drift's settings, alternating, ROUNDS times each. Prints one line
# per run: ms/step (mean of steps 11-60), CPU seconds of the cell (user, system),
# minor page faults, peak RSS.
#   bash bench/allocator.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
ROUNDS=${2:-2}
EXP=bench/experiments/allocator_step.toml
out=results/bench/allocator_step.h5
cache=results/bench/allocator_features
echo "| allocator | ms/step | user s | system s | minor faults | peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|"
for ((r = 0; r < ROUNDS; ++r)); do
  for mode in glibc drift; do
    rm -rf "$cache"
    DRIFT_ALLOCATOR=$mode /usr/bin/time -f "%U %S %R %M" -o /tmp/drift-alloc-time.txt \
      "$BUILD/bin/drift-run" --restart "$EXP" > /dev/null 2>&1
    read -r user sys faults rss < /tmp/drift-alloc-time.txt
    ms=$(.venv/bin/python -c "
import h5py
with h5py.File('$out') as f:
    t = f['cells/0000/train'][()]
    print(f\"{t['seconds'][t['step'] > 10].mean() * 1000:.0f}\")")
    echo "| $mode | $ms | $user | $sys | $faults | $((rss / 1024)) |"
  done
done
rm -rf "$cache"
