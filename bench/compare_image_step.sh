#!/usr/bin/env bash
# The training step of experiments/recipes/fmnist_best.toml: drift (C++,
# LibTorch, fused drift field) against the same step in PyTorch
# (bench/py/image_step.py), eager and torch.compile, at 1 and 2 threads, run
# back to back. Prints one table (steps/s, ms/step, drift / eager,
# drift / compile) and the phase breakdown of each side.
#
# drift runs bench/experiments/fmnist_best_step.toml (conv generator, MAE
# ResNet maps s1-s3, 10 classes x 8 generated + 32 positives + 4 unconditional
# negatives, [train] profile = true) at n_pos 32, twice per thread count:
#   cache   [train] feature_cache = "float16": the shipped recipe; the real
#           images' encoder features are looked up (the cache is built on
#           first use in results/features/, 2.45 GB, about a CPU-minute);
#   encode  feature_cache = "off": positives and negatives go through the
#           frozen encoder every step, the same work as the PyTorch step.
# Per row: wall ms/step, median and best (fastest) step over the steps after
# the first SKIP (drift's own step clock; perf_counter around the step in
# Python), and CPU s/step (process user+sys: Python over its timed steps;
# drift as the difference between a cell of DRIFT_STEPS steps and one of SKIP
# steps, which share everything else). On a shared machine the best step and
# the CPU time are the robust numbers (at 1 thread both equal a quiet core's
# step time); with 2 threads, spinning OpenMP threads that lose their core
# inflate both wall and CPU time. The whole comparison runs REPEATS times;
# each number is the best over the rounds, and each round's median is shown.
# drift and PyTorch at one thread count run one after the other; the load
# average is printed at each start.
#   bash bench/compare_image_step.sh [BUILD_DIR] [DRIFT_STEPS] [PY_STEPS] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DRIFT_STEPS=${2:-25}
PY_STEPS=${3:-15}
REPEATS=${4:-1}
SKIP=5
PY=.venv/bin/python
# COMPARE_OUT=DIR keeps the raw outputs (logs, results files) in DIR.
if [ -n "${COMPARE_OUT:-}" ]; then
  OUT=$COMPARE_OUT
  mkdir -p "$OUT"
else
  OUT=$(mktemp -d /tmp/compare_image_step-XXXXXX)
  trap 'rm -rf "$OUT"' EXIT
fi

# The experiments: fmnist_best_step.toml with its own output, n_pos 32 and
# the grid cache x steps (SKIP, DRIFT_STEPS), one file per thread count.
for t in 1 2; do
  sed -e '/^\[grid\]/,$d' \
      -e "s|^output = .*|output = \"$OUT/drift_t$t.h5\"|" \
      -e "s|^threads = .*|threads = $t|" \
      -e "s|^n_pos = .*|n_pos = 32|" \
      bench/experiments/fmnist_best_step.toml >"$OUT/exp_t$t.toml"
  printf '[grid]\n"train.feature_cache, train.steps" = [["float16", %d], ["float16", %d], ["off", %d], ["off", %d]]\n' \
    "$SKIP" "$DRIFT_STEPS" "$SKIP" "$DRIFT_STEPS" >>"$OUT/exp_t$t.toml"
done

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; commit $(git rev-parse --short HEAD);" \
     "torch $($PY -c 'import torch; print(torch.__version__)')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$REPEATS"); do
  for t in 1 2; do
    echo "round $r/$REPEATS, $t thread(s): drift ($SKIP + $DRIFT_STEPS steps x 2); load $(cut -d' ' -f1 /proc/loadavg)" >&2
    /usr/bin/time -v -o "$OUT/drift_time_${t}_$r.txt" "$BUILD/bin/drift-run" --restart --jobs 1 "$OUT/exp_t$t.toml" \
      >"$OUT/drift_log_${t}_$r.txt" 2>&1 || { cat "$OUT/drift_log_${t}_$r.txt" >&2; exit 1; }
    cp "$OUT/drift_t$t.h5" "$OUT/drift_${t}_$r.h5"
    for mode in eager compile; do
      echo "round $r/$REPEATS, $t thread(s): PyTorch $mode ($PY_STEPS steps); load $(cut -d' ' -f1 /proc/loadavg)" >&2
      /usr/bin/time -v -o "$OUT/py_time_${mode}_${t}_$r.txt" \
        $PY bench/py/image_step.py --mode "$mode" --threads "$t" --steps "$PY_STEPS" \
        >"$OUT/py_${mode}_${t}_$r.txt"
    done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

$PY - "$OUT" "$REPEATS" "$SKIP" <<'PY'
import re, sys
import h5py, numpy as np
out, repeats, skip = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def peak_mb(path):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(path).read())
    return int(m.group(1)) / 1024

runs = {}  # row key -> list of per-round dicts
for r in range(1, repeats + 1):
    for tf in (1, 2):
        rss = peak_mb(f"{out}/drift_time_{tf}_{r}.txt")
        cells = {}
        with h5py.File(f"{out}/drift_{tf}_{r}.h5", "r") as f:
            for c in f["cells"]:
                g = f["cells"][c]
                cfg = g.attrs["config_toml"]
                cfg = cfg.decode() if isinstance(cfg, bytes) else cfg
                cache = re.search(r'^feature_cache = "(\w+)"', cfg, re.M).group(1)
                cells[(cache, int(re.search(r"^steps = (\d+)", cfg, re.M).group(1)))] = \
                    (g["train"][()], float(g.attrs["cpu_time_s"]))
        for cache in ("float16", "off"):
            (t, cpu_long), (_, cpu_short) = cells[(cache, max(s for c, s in cells if c == cache))], \
                                            cells[(cache, skip)]
            keep = t["step"] > skip
            sec = t["seconds"][keep]
            runs.setdefault((tf, "cache" if cache != "off" else "encode"), []).append(dict(
                med=float(np.median(sec)) * 1000, best=float(sec.min()) * 1000,
                cpu=(cpu_long - cpu_short) / keep.sum(), rss=rss,
                phases={n[2:]: float(np.median(t[n][keep])) for n in t.dtype.names if n.startswith("t_")},
                loss_first=float(t["loss"][0]), loss=float(t["loss"][-1])))
        for mode in ("eager", "compile"):
            kv = dict(l.split(None, 1) for l in open(f"{out}/py_{mode}_{tf}_{r}.txt") if l.strip())
            runs.setdefault((tf, mode), []).append(dict(
                med=float(kv["ms_per_step"]), best=float(kv["ms_per_step_min"]),
                cpu=float(kv["cpu_s_per_step"]), compile_s=float(kv["compile_s"]),
                rss=peak_mb(f"{out}/py_time_{mode}_{tf}_{r}.txt"),
                phases={k[len("phase_ms:"):]: float(v) / 1000 for k, v in kv.items() if k.startswith("phase_ms:")},
                loss_first=float(kv["loss_first"]), loss=float(kv["loss_last"]),
                weights=kv["encoder_weights"].strip()))

best = {k: dict(med=min(x["med"] for x in v), best=min(x["best"] for x in v), cpu=min(x["cpu"] for x in v),
                rss=max(x["rss"] for x in v), rounds=" / ".join(f"{x['med']:.0f}" for x in v),
                run=min(v, key=lambda x: x["med"])) for k, v in runs.items()}
names = {"cache": "drift, real-feature cache (the shipped recipe)",
         "encode": "drift, positives + negatives through the encoder (the PyTorch step's work)",
         "eager": "PyTorch eager", "compile": "PyTorch torch.compile"}
print(f"\nbest of {repeats} round(s); wall ms/step over steps {skip + 1}..end; ratios = PyTorch time / drift time\n")
print("| threads | implementation | steps/s (best step) | ms/step best | ms/step median (each round) | CPU s/step "
      "| drift vs eager: best step, CPU | drift vs compile: best step, CPU | peak RSS MB |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for t in (1, 2):
    e, c = best[(t, "eager")], best[(t, "compile")]
    for k in ("cache", "encode", "eager", "compile"):
        b = best[(t, k)]
        ratio = lambda p: f"{p['best'] / b['best']:.2f}×, {p['cpu'] / b['cpu']:.2f}×" if k in ("cache", "encode") else ""
        print(f"| {t} | {names[k]} | {1000 / b['best']:.2f} | {b['best']:.0f} | {b['med']:.0f} ({b['rounds']}) | "
              f"{b['cpu']:.3f} | {ratio(e)} | {ratio(c)} | {b['rss']:.0f} |")
print("\ndrift's peak RSS: the drift-run of the thread count's four cells (the cache's table included). "
      f"torch.compile time (first steps, excluded): " +
      ", ".join(f"{t} thread(s) {x['compile_s']:.0f} s" for t in (1, 2) for x in runs[(t, 'compile')]) +
      " (a warm inductor cache shortens all but a first-ever compile). "
      f"PyTorch encoder weights: {runs[(1, 'eager')][0]['weights']}.")

order = ["data", "generate", "encode_gen", "encode_real", "field", "backward_encoder",
         "backward_generator", "optimizer"]
for t in (1, 2):
    cols = [("drift, cache", best[(t, "cache")]["run"]), ("drift, encoder", best[(t, "encode")]["run"]),
            ("PyTorch eager", best[(t, "eager")]["run"])]
    print(f"\nPhases, {t} thread(s), median ms per phase (the round with the lowest median step):\n")
    print("| phase | " + " | ".join(n for n, _ in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for p in order:
        print(f"| {p} | " + " | ".join(f"{r['phases'].get(p, 0) * 1000:.1f}" for _, r in cols) + " |")
    print("| **step (median)** | " + " | ".join(f"**{r['med']:.0f}**" for _, r in cols) + " |")
    c = best[(t, "compile")]["run"]
    print(f"\nPyTorch torch.compile, {t} thread(s): " +
          ", ".join(f"{k} {v * 1000:.1f}" for k, v in c["phases"].items()) + f" ms; step {c['med']:.0f} ms")
print("\nloss at step 1 / at the last step: " + "; ".join(
    f"{names[k[1]].split(' (')[0]} {k[0]} thr {v[0]['loss_first']:.1f} / {v[0]['loss']:.1f}" for k, v in sorted(runs.items())))
PY
