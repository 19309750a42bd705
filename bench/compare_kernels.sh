#!/usr/bin/env bash
# Cost per training step of every drift kernel relative to the default
# (`laplace`), measured in ONE drift-run invocation: one experiment whose grid
# runs the kernels back to back (one cell at a time, 1 thread each), repeated
# over the grid's outer key, so that slow drifts of the machine's load show up
# as a difference between rounds. Prints ms/step (median of the cell's
# per-step `seconds`, the first 20 steps left out) per round and overall, the
# ratio to laplace, and each cell's final toy metrics.
#
#   bash bench/compare_kernels.sh [BUILD_DIR] [toy|fmnist] [STEPS] [ROUNDS]
#
# ROUNDS (default 1) repeats the kernels with seeds 0 .. ROUNDS-1 (outer grid
# key), e.g. `bash bench/compare_kernels.sh build toy 300 3` for cost only.
# Besides the median step time it prints CPU ms/step = the cell's CPU time
# (all of its process: start, evaluations, training) / steps, which a busy
# machine disturbs less than wall time.
#
#   toy (default): the 2-D toy protocol of docs/results/ablations.md (MLP, n_gen =
#     n_pos = 256, temperatures {0.2, 0.5, 1.0}, 1500 steps); rounds = seed x
#     the two toys bimodal and eight_gaussians (same shapes: 2-D features,
#     256 x 256 targets). With the full 1500 steps and 1 round the cells are
#     also the `sinkhorn` and `mmd` rows of the kernel ablation
#     (docs/results/ablations.md; ~4 min); `toy 300 3` is the cost table (~2.5 min).
#   fmnist: Fashion-MNIST [1, 32, 32], `conv` generator, `identity` encoder
#     (one feature of size 1024), 4 classes x 64 generated x 64 positives per
#     step, temperatures {0.02, 0.05, 0.2}, 40 steps; rounds = seeds.
#     Cost only (no evaluation worth reading at 40 steps). ~4 min for `fmnist 40 2`.
#
# Kernels: laplace (fused CPU kernel, impl "auto"), general (the same field
# in plain LibTorch ops, the ablation kernel), mmd, sinkhorn (default
# iterations = 50, tolerance = 1e-4). Results:
# results/compare_kernels_<mode>_<steps>x<rounds>.h5 (redone each time: --restart).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
MODE=${2:-toy}
ROUNDS=${4:-1}
seeds=$(seq -s ', ' 0 $((ROUNDS - 1)))
PY=${DRIFT_PYTHON:-.venv/bin/python}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
exp="$dir/compare_kernels_$MODE.toml"
case "$MODE" in toy) STEPS=${3:-1500} ;; fmnist) STEPS=${3:-40}; [ "$ROUNDS" -ge 2 ] || { ROUNDS=2; seeds="0, 1"; } ;; esac
out="results/compare_kernels_${MODE}_${STEPS}x${ROUNDS}.h5"
mkdir -p results

case "$MODE" in
toy)
  cat >"$exp" <<TOML
[experiment]
name = "compare_kernels_toy"
output = "$out"
threads = 1
[data]
dataset = "bimodal"
[generator]
plugin = "mlp"
[kernel]
plugin = "laplace"
temperatures = [0.2, 0.5, 1.0]
[train]
steps = $STEPS
n_gen = 256
n_pos = 256
lr = 1e-3
warmup = 100
ema = 0.99
eval_every = 500
sample_every = 300
[eval]
metrics = ["mmd", "energy", "sliced_w", "mode_share"]
n_samples = 2048
[grid]
"experiment.seed" = [$seeds]
"data.dataset" = ["bimodal", "eight_gaussians"]
"kernel.plugin" = ["laplace", "general", "mmd", "sinkhorn"]
TOML
  ROUND_KEY=experiment.seed,data.dataset
  ;;
fmnist)
  cat >"$exp" <<TOML
[experiment]
name = "compare_kernels_fmnist"
output = "$out"
threads = 1
[data]
dataset = "fashion_mnist"
[generator]
plugin = "conv"
[encoder]
plugin = "identity"
[kernel]
plugin = "laplace"
temperatures = [0.02, 0.05, 0.2]
[train]
steps = $STEPS
n_classes = 4
n_gen = 64
n_pos = 64
warmup = 10
eval_every = 0
sample_every = 0
[eval]
metrics = ["mmd"]
n_samples = 64
[grid]
"experiment.seed" = [$seeds]
"kernel.plugin" = ["laplace", "general", "mmd", "sinkhorn"]
TOML
  ROUND_KEY=experiment.seed
  ;;
*) echo "usage: $0 [BUILD_DIR] [toy|fmnist] [STEPS] [ROUNDS]" >&2; exit 2 ;;
esac
echo "# $(date -u +%FT%TZ)  $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bin/drift-run" --jobs 1 --restart "$exp"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$out" "$ROUND_KEY" <<'PYEOF'
import sys
import h5py, numpy as np, pandas as pd

path, round_keys = sys.argv[1], sys.argv[2].split(",")
dec = lambda v: v.decode() if isinstance(v, bytes) else v
with h5py.File(path, "r") as f:
    s = pd.DataFrame(f["summary"][()])
    for c in s.columns:
        s[c] = s[c].map(dec)
    rows = []
    for _, r in s.iterrows():
        cid = f"cells/{int(r['cell']):04d}"
        t = f[cid + "/train"][()] if cid + "/train" in f else None
        sec = np.asarray(t["seconds"])[20:] if t is not None else np.array([np.nan])
        steps = int(r["steps_done"])
        rows.append(dict(kernel=r["kernel.plugin"], status=r["status"],
                         round="/".join(str(r[k]) for k in round_keys),
                         ms=1000 * float(np.median(sec)),
                         cpu_ms=1000 * float(r.get("cpu_time_s", np.nan)) / max(steps, 1),
                         steps=steps, row=r))
d = pd.DataFrame(rows)
rounds = list(dict.fromkeys(d["round"]))
kernels = list(dict.fromkeys(d["kernel"]))
ms = d.pivot(index="kernel", columns="round", values="ms").loc[kernels, rounds]
cpu = d.pivot(index="kernel", columns="round", values="cpu_ms").loc[kernels, rounds]
print(f"\nms per training step, 1 thread; rounds = {'/'.join(round_keys)}: " + ", ".join(rounds))
print("wall: median of the per-step `seconds` (steps 21-end); cpu: the cell's CPU time / steps")
print("| kernel | wall ms/step per round | wall ratio to laplace per round | wall ratio (median) | cpu ms/step (median) | cpu ratio (median) |")
print("|---|---|---|---:|---:|---:|")
for k in kernels:
    wr = [ms.loc[k, r] / ms.loc["laplace", r] for r in rounds]
    cr = [cpu.loc[k, r] / cpu.loc["laplace", r] for r in rounds]
    print(f"| {k} | " + " / ".join(f"{ms.loc[k, r]:.2f}" for r in rounds) + " | "
          + " / ".join(f"{x:.2f}" for x in wr) + f" | {np.median(wr):.2f} | "
          + f"{np.median(cpu.loc[k].values):.2f} | {np.median(cr):.2f} |")
if not any(c in s.columns for c in ["final_mmd", "final_energy", "final_sliced_w"]):
    sys.exit(0)
print("\nfinal metrics per cell")
cols = [c for c in ["final_mmd", "final_mmd_floor", "final_energy", "final_sliced_w",
                    "final_sliced_w_floor", "final_modes_covered"] if c in s.columns]
shares = [c for c in s.columns if c.startswith("final_mode_share_")]
mt = [c for c in s.columns if c.startswith("final_m_tau_")]
print("| cell | " + "/".join(round_keys) + " | kernel | status | " + " | ".join(c[6:] for c in cols)
      + " | mode shares (min-max) | " + " | ".join(c[6:] for c in mt) + " | steps | wall s |")
print("|" + "---|" * (6 + len(cols) + len(mt)))
for _, x in d.iterrows():
    r = x["row"]
    sh = [r[c] for c in shares if np.isfinite(r[c])]
    shs = f"{min(sh):.3f}-{max(sh):.3f}" if sh else "n/a"
    print(f"| {int(r['cell'])} | {x['round']} | {x['kernel']} | {x['status']} | "
          + " | ".join(f"{r[c]:.4g}" for c in cols) + f" | {shs} | "
          + " | ".join(f"{r[c]:.3g}" for c in mt) + f" | {x['steps']} | {r['wall_time_s']:.0f} |")
PYEOF
