#!/usr/bin/env bash
# The authors' public toy demo (checkerboard, Swiss roll): drift (C++,
# experiments/paper/toy_official.toml) vs a plain PyTorch re-implementation
# (bench/py/toy_official.py), both 2000 steps of 2048 samples, compared by the
# energy distance of their final 8192 samples to fresh data (drift: 3 seeds,
# PyTorch: 2 seeds) and by speed.
#
#   bash bench/compare_toy_official.sh
#
# 1. drift:   build/bin/drift-run --jobs 2 --restart experiments/paper/toy_official.toml
#             (both cells at once, one thread each) -> results/toy_official.h5
# 2. PyTorch: bench/py/toy_official.py for both datasets, one thread each, the
#             two run at the same time (like drift's --jobs 2; PY_PARALLEL=0 runs
#             them one after the other) -> results/toy_official_pytorch_<dataset>.h5
# 3. bench/py/toy_official_eval.py: prints the Markdown table (energy distances,
#    floor, ratio, steps/s, CPU s), writes results/toy_official_compare.md and
#    results/toy_official_compare.png.
#
# Exit status: 0; 1 if drift's energy distance exceeds 1.25x PyTorch's for
# either dataset (after the table is printed; checked only when both ran the
# same number of steps) or a run failed; 2 if a file is missing.
#
# Environment:
#   STEPS=N        PyTorch steps (default 2000). Affects the PyTorch side ONLY:
#                  drift's steps come from the toml and cannot be overridden on the
#                  command line. Use with SKIP_DRIFT=1 for a quick smoke run.
#   BATCH=N        PyTorch samples per step (default 2048, as the toml)
#   SEEDS="0 1"    PyTorch training seeds (default "0 1"; drift's are in the toml)
#   EVAL_SAMPLES=N final samples of each PyTorch run (default 8192, as the toml)
#   SKIP_DRIFT=1   do not run drift-run; drift's columns come from an existing
#                  results/toy_official.h5 if there is one, else stay empty
#   PY_PARALLEL=0  run the two PyTorch trainings one after the other
#   BUILD=DIR      build directory holding bin/drift-run (default build)
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=${STEPS:-2000}
BATCH=${BATCH:-2048}
SEEDS=${SEEDS:-0 1}
EVAL_SAMPLES=${EVAL_SAMPLES:-8192}
SKIP_DRIFT=${SKIP_DRIFT:-0}
PY_PARALLEL=${PY_PARALLEL:-1}
BUILD=${BUILD:-build}
PY=.venv/bin/python
TOML=experiments/paper/toy_official.toml
DRIFT_H5=results/toy_official.h5

die() { echo "compare_toy_official: error: $*" >&2; exit 2; }
for f in "$PY" bench/py/toy_official.py bench/py/toy_official_eval.py "$TOML"; do
  [[ -e $f ]] || die "missing $f"
done
mkdir -p results

# 1. drift
if [[ $SKIP_DRIFT != 1 ]]; then
  [[ -x $BUILD/bin/drift-run ]] || die "missing $BUILD/bin/drift-run (build the project, or SKIP_DRIFT=1)"
  echo "== drift: $BUILD/bin/drift-run --jobs 2 --restart $TOML"
  drift_rc=0
  "$BUILD/bin/drift-run" --jobs 2 --restart "$TOML" || drift_rc=$?
  [[ -f $DRIFT_H5 ]] || die "missing $DRIFT_H5 after drift-run (exit $drift_rc)"
  # A failed/diverged cell: keep going, the evaluation reports its status (or
  # stops on a cell without samples); the exit status below reflects it.
  [[ $drift_rc == 0 ]] || echo "compare_toy_official: warning: drift-run exited $drift_rc" >&2
  drift_args=(--drift "$DRIFT_H5" --require-drift)
else
  drift_rc=0
  echo "== drift: skipped (SKIP_DRIFT=1)"
  drift_args=(--drift "$DRIFT_H5")
fi

# 2. PyTorch
echo "== PyTorch: $STEPS steps, batch $BATCH, seeds $SEEDS, 1 thread each, parallel=$PY_PARALLEL"
torch_args=()
for seed in $SEEDS; do
  pids=()
  for ds in checkerboard swiss_roll; do
    out="results/toy_official_pytorch_${ds}_seed$seed.h5"
    cmd=("$PY" bench/py/toy_official.py --dataset "$ds" --steps "$STEPS" --batch "$BATCH"
         --threads 1 --seed "$seed" --eval-samples "$EVAL_SAMPLES" --out "$out")
    if [[ $PY_PARALLEL == 1 ]]; then
      "${cmd[@]}" & pids+=($!)
    else
      "${cmd[@]}" || { echo "compare_toy_official: error: PyTorch run for $ds failed" >&2; exit 1; }
    fi
    torch_args+=("$ds=$out")
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || { echo "compare_toy_official: error: a PyTorch run failed" >&2; exit 1; }
  done
done
for item in "${torch_args[@]}"; do
  [[ -f ${item#*=} ]] || die "missing ${item#*=}"
done

# 3. evaluation (exits 1 after the table if the acceptance criterion fails)
echo "== evaluation"
"$PY" bench/py/toy_official_eval.py "${drift_args[@]}" --pytorch "${torch_args[@]}" \
  --md results/toy_official_compare.md --png results/toy_official_compare.png
[[ $drift_rc == 0 ]] || exit 1
