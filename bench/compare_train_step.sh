#!/usr/bin/env bash
# Toy MLP training step: drift (C++, LibTorch) vs the same step in Python with
# PyTorch eager, measured back to back in one run. Prints both and the ratio.
#   bash bench/compare_train_step.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
THREADS=$(nproc)
cpp=$(DRIFT_NUM_THREADS=$THREADS "$BUILD/bin/bench_train_step" --benchmark_format=json 2>/dev/null \
      | .venv/bin/python -c "import json,sys; d=json.load(sys.stdin); print(d['benchmarks'][0]['steps_per_s'])")
py=$(.venv/bin/python bench/py/train_step.py --steps 300 --threads "$THREADS" | awk '/python_eager_steps_per_s/ {print $2}')
printf "threads=%s  drift C++: %.1f steps/s   PyTorch eager: %.1f steps/s   ratio: %.2fx\n" \
  "$THREADS" "$cpp" "$py" "$(echo "$cpp / $py" | bc -l)"
