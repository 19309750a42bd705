#!/usr/bin/env bash
# Where the time of one image training step goes, and 1 rank x 2 threads
# against 2 ranks x 1 thread (c10d Gloo on loopback), from the [train] profile
# columns of bench/experiments/image_step.toml (or the file given). Prints a
# Markdown table per cell: seconds per phase (mean over steps after the first
# 10), share of the step, steps/s, generated samples/s, CPU seconds per step.
#   bash bench/image_step.sh [BUILD_DIR] [EXPERIMENT]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
EXP=${2:-bench/experiments/image_step.toml}
"$BUILD/bin/drift-run" --restart --jobs 1 "$EXP" >&2
out=$(sed -nE 's/^output = "(.*)"/\1/p' "$EXP")
.venv/bin/python - "$out" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    for c in sorted(f["cells"]):
        g = f["cells"][c]
        t = g["train"][()]
        keep = t["step"] > 10
        phases = [n for n in t.dtype.names if n.startswith("t_")]
        step_s = t["seconds"][keep].mean()
        cfg = g.attrs["config_toml"]
        threads = [l for l in cfg.splitlines() if l.startswith("threads")][0].split("=")[1].strip()
        nproc = [l for l in cfg.splitlines() if l.startswith("nproc")][0].split("=")[1].strip()
        n_gen = int([l for l in cfg.splitlines() if l.startswith("n_gen")][0].split("=")[1])
        n_cls = int([l for l in cfg.splitlines() if l.startswith("n_classes")][0].split("=")[1])
        steps = int(t["step"].max())
        grid = "; ".join(l[len("# grid: "):] for l in cfg.splitlines() if l.startswith("# grid: "))
        print(f"\n**{nproc} rank(s) x {threads} thread(s)** (cell {c}: {grid}): {step_s * 1000:.0f} ms/step, "
              f"{1 / step_s:.2f} steps/s, {n_cls * n_gen / step_s:.0f} generated samples/s, "
              f"{g.attrs['cpu_time_s'] / steps:.2f} CPU s/step (all ranks, whole cell incl. set-up), "
              f"gather {int(t['gather_floats'][-1])} floats/rank/step, all-reduce {int(t['reduce_floats'][-1])} floats/step\n")
        print("| phase | ms/step | share |")
        print("|---|---:|---:|")
        for p in phases:
            v = t[p][keep].mean()
            print(f"| {p[2:]} | {v * 1000:.1f} | {100 * v / step_s:.0f}% |")
        rest = step_s - sum(t[p][keep].mean() for p in phases)
        print(f"| (logging, between phases) | {rest * 1000:.1f} | {100 * rest / step_s:.0f}% |")
PY
