#!/usr/bin/env bash
# Training-step speed of a Fashion-MNIST cell (DiT generator, random_resnet encoder,
# 10 classes x 16 generated / 16 positive / 8 unconditional samples) with the
# plain and the fused drift field, run back to back by one drift-run call.
# Prints the median seconds per step (steps 3..end) and steps/s of each.
#   bash bench/fmnist_field_speed.sh [BUILD_DIR] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
THREADS=${2:-$(nproc)}
# The experiment with [experiment] threads = THREADS (each cell's LibTorch threads).
EXP=$(mktemp --suffix=.toml)
trap 'rm -f "$EXP"' EXIT
sed "s/^\[experiment\]$/[experiment]\nthreads = $THREADS/" bench/experiments/fmnist_field_speed.toml >"$EXP"
echo "machine: $(nproc) CPUs; threads $THREADS; load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bin/drift-run" --restart --jobs 1 "$EXP" >/dev/null
.venv/bin/python - results/bench/fmnist_field_speed.h5 <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    rows = {}
    for cid in f["cells"]:
        cell = f["cells"][cid]
        impl = cell.attrs.get("grid", b"")
        impl = impl.decode() if isinstance(impl, bytes) else str(impl)
        sec = np.asarray(cell["train"]["seconds"])[2:]
        rows[impl] = float(np.median(sec))
for impl, med in rows.items():
    print(f"  {impl:40s} {med * 1000:9.1f} ms/step  {1 / med:7.2f} steps/s")
meds = list(rows.values())
if len(meds) == 2:
    print(f"  plain / fused time per step: {meds[0] / meds[1]:.2f}x")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
