"""FID, precision, recall and per-class accuracy against the number of function evaluations (NFE): the flow-matching peer
(bench/py/flow_matching.py, one curve per solver / guidance, mean over seeds with the seed range)
beside drift's one-step generator (`fmnist_best`, test split, 4 seeds), and the markdown table
of docs/results/images.md ("One step against many").

    .venv/bin/python bench/py/plot_flow_vs_drift.py results/flow/fm_final_s0 results/flow/fm_final_s1 \
        --out docs/img/flow_vs_drift_nfe.png

Each PREFIX names one trained model; its scored settings are the drift-eval --json files
PREFIX_<solver>_nfe<N>[_g<w>].test.json beside the samples PREFIX_<solver>_nfe<N>[_g<w>].h5,
whose attrs give the NFE (guidance counted twice) and the sampling CPU-s per 1000 images.
Drift's point is read from --drift-json: drift-eval --json files of the recipe's cells, one per
seed (`build/bin/drift-eval results/fmnist_blocks2.h5 --cell C --json FILE`), labelled with
--drift-label; without them it is the one-block recipe's documented 4-seed result (FID 14.1 +- 2.6,
recall 0.68 +- 0.01, ...), the drift point of the Xeon comparison. --drift-cpu gives its sampling CPU-s per 1000 images; --time-drift-generator FILE.pt measures it
instead: the median process CPU time, at 1 thread, of five calls of the TorchScript generator's
sample(1000, labels, alpha = 1) (drift-export's file; the cost does not depend on the weights).
"""
import argparse
import glob
import json
import os
import re
from collections import defaultdict

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# fmnist_best with one block per resolution and EMA 0.995, alpha = 1, test split, seeds 0-3
# (docs/results/images.md, run A): the default drift point
DRIFT = {"fid": [10.79, 17.17, 13.66, 14.69], "precision": [0.666, 0.597, 0.716, 0.676],
         "recall": [0.697, 0.668, 0.676, 0.680], "accuracy": [0.932, 0.891, 0.922, 0.912]}
METRICS = ["fid", "precision", "recall", "accuracy"]


def collect(prefixes, split):
    """{(training CPU-min, solver, guidance): {nfe: {metric: [values over seeds], "cpu": [...]}}}:
    models trained for different budgets are kept apart (CPU-min to 0.5)."""
    out = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    pat = re.compile(r"_(euler|heun)_nfe(\d+)(?:_g([0-9.]+))?\." + split + r"\.json$")
    for prefix in prefixes:
        for path in sorted(glob.glob(f"{prefix}_*.{split}.json")):
            m = pat.search(path)
            if not m:
                continue
            solver, g = m.group(1), float(m.group(3) or 1.0)
            with h5py.File(path[: -len(f".{split}.json")] + ".h5", "r") as f:
                nfe, cpu = int(f.attrs["nfe"]), float(f.attrs["sample_cpu_s_per_1000"])
                train_cpu = float(f.attrs["train_cpu_time_s"])
            with open(path) as f:
                met = json.load(f)["metrics"]
            cell = out[(round(train_cpu / 30) / 2, solver, g)][nfe]
            for k in METRICS:
                cell[k].append(met[k])
            cell["cpu"].append(cpu)
            cell["train_cpu"].append(train_cpu)
    return out


def budget(rows):
    return np.mean([c for r in rows.values() for c in r["train_cpu"]]) / 60


def fmt(v, digits):
    v = np.asarray(v, float)
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def time_generator(path, reps=5):
    import time

    import torch
    torch.set_num_threads(1)
    m = torch.jit.load(path)
    labels = torch.arange(10).repeat_interleave(100)
    alpha = torch.ones(1000)
    cpu = []
    with torch.no_grad():
        for _ in range(reps):
            c = time.process_time()
            m.sample(1000, labels, alpha)
            cpu.append(time.process_time() - c)
    return float(np.median(cpu)), cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("prefixes", nargs="+")
    ap.add_argument("--split", default="test", help="json suffix: test or val")
    ap.add_argument("--drift-cpu", type=float, default=float("nan"),
                    help="drift's sampling CPU-s per 1000 images")
    ap.add_argument("--time-drift-generator", default="", help="drift-export's .pt: measure --drift-cpu")
    ap.add_argument("--drift-json", nargs="+", default=[],
                    help="drift-eval --json files of drift's cells (one per seed): drift's point")
    ap.add_argument("--drift-label", default="drift fmnist_best (57.4 CPU-min), 1 step",
                    help="legend and table label of drift's point")
    ap.add_argument("--title", default="", help="first part of the figure title (e.g. the machine)")
    ap.add_argument("--out", default="docs/img/flow_vs_drift_nfe.png")
    args = ap.parse_args()
    data = collect(args.prefixes, args.split)
    drift = DRIFT
    if args.drift_json:
        drift = {k: [] for k in METRICS}
        for path in args.drift_json:
            with open(path) as f:
                met = json.load(f)["metrics"]
            for k in METRICS:
                drift[k].append(met[k])
    if args.time_drift_generator:
        args.drift_cpu, reps = time_generator(args.time_drift_generator)
        print(f"drift generator {args.time_drift_generator}: {args.drift_cpu:.2f} CPU-s per 1000 (median of "
              f"{', '.join(f'{c:.2f}' for c in reps)})")

    print("| sampler | NFE | FID ↓ | precision | recall | accuracy | sampling CPU-s / 1000 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.drift_label} ({len(drift['fid'])} seeds) | 1 | {fmt(drift['fid'], 1)} "
          f"| {fmt(drift['precision'], 2)} | {fmt(drift['recall'], 2)} | {fmt(drift['accuracy'], 3)} "
          f"| {args.drift_cpu:.2f} |")
    for (_, solver, g), rows in sorted(data.items()):
        name = f"flow matching ({budget(rows):.1f} CPU-min), {solver}" + ("" if g == 1.0 else f", guidance {g:g}")
        for nfe in sorted(rows):
            r = rows[nfe]
            print(f"| {name} ({len(r['fid'])} seeds) | {nfe} | {fmt(r['fid'], 1)} | {fmt(r['precision'], 2)} "
                  f"| {fmt(r['recall'], 2)} | {fmt(r['accuracy'], 3)} | {np.mean(r['cpu']):.1f} |")

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    panels = [("fid", "FID ↓"), ("precision", "precision ↑"), ("recall", "recall ↑"),
              ("accuracy", "per-class accuracy ↑")]
    for ax, (key, label) in zip(axes.flat, panels):
        label = f"{label} ({args.split} split)"
        for (_, solver, g), rows in sorted(data.items()):
            nfes = sorted(rows)
            vals = [np.asarray(rows[n][key]) for n in nfes]
            mean = np.array([v.mean() for v in vals])
            lo = np.array([v.min() for v in vals])
            hi = np.array([v.max() for v in vals])
            name = f"flow matching ({budget(rows):.1f} CPU-min), {solver}" + ("" if g == 1.0 else f", w = {g:g}")
            ax.plot(nfes, mean, "o-", label=name)
            ax.fill_between(nfes, lo, hi, alpha=0.2)
        d = np.asarray(drift[key])
        ax.errorbar([1], [d.mean()], yerr=[[d.mean() - d.min()], [d.max() - d.mean()]], fmt="*", ms=14,
                    color="crimson", capsize=4, label=args.drift_label)
        ax.axhline(d.mean(), ls="--", lw=1, color="crimson", alpha=0.6)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("function evaluations per sample (NFE)")
        ax.set_ylabel(label)
        if key == "fid":
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        if key == "fid":
            ax.legend(fontsize=8)
    fig.suptitle((f"{args.title}: " if args.title else "") + f"Fashion-MNIST 32x32, {args.split} split, training CPU-min as labelled "
                 "(mean over seeds; band / bar = seed range)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
