#!/usr/bin/env bash
# Toy MLP training step: drift (C++, LibTorch) vs the same step in Python with
# PyTorch eager, measured back to back in one run. Prints both and the ratio.
# Also times the MLP + AdamW part alone in Python, the part no drift-field work
# can speed up.
#   bash bench/compare_train_step.sh [BUILD_DIR] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
THREADS=${2:-$(nproc)}
json=$(DRIFT_NUM_THREADS=$THREADS "$BUILD/bin/bench_train_step" --benchmark_format=json 2>/dev/null)
py_out=$(.venv/bin/python bench/py/train_step.py --steps 300 --threads "$THREADS")
.venv/bin/python - "$json" "$py_out" "$THREADS" <<'PY'
import json, sys
d = json.loads(sys.argv[1]); py = dict(l.split() for l in sys.argv[2].splitlines() if l.strip())
rate = {b["name"].split("/")[0]: b["steps_per_s"] for b in d["benchmarks"]}
fused, plain = rate["BM_ToyMlpTrainStep"], rate["BM_ToyMlpTrainStepPlainField"]
eager, mlp_ms = float(py["python_eager_steps_per_s"]), float(py["python_mlp_adamw_ms"])
print(f"threads={sys.argv[3]}")
print(f"  drift C++, fused field : {fused:8.1f} steps/s   {fused / eager:5.2f}x PyTorch eager")
print(f"  drift C++, plain field : {plain:8.1f} steps/s   {plain / eager:5.2f}x PyTorch eager")
zero = rate.get("BM_ToyMlpTrainStepZeroField")
if zero:
    print(f"  drift C++, zero field  : {zero:8.1f} steps/s   ({1000 / zero:.2f} ms/step: generator, optimiser, data only)")
print(f"  PyTorch eager          : {eager:8.1f} steps/s   ({1000 / eager:.2f} ms/step, of which MLP+AdamW alone {mlp_ms:.2f} ms)")
PY
