"""Evaluation step of bench/compare_toy_official.sh: drift (C++) vs the PyTorch
re-implementation (bench/py/toy_official.py) of the authors' toy demo.

For each dataset it draws --refs independent sets of --n fresh data samples
(seeds neither training used) and computes the energy distance

    E = 2 E|X - Y| - E|X - X'| - E|Y - Y'|

(unbiased U-statistic: the within-sample means leave out the self pairs;
Euclidean, float64; averaged over the reference sets) of drift's final samples
(every seed cell of the dataset), of the PyTorch final samples (every file
given for the dataset), and of another independent fresh data sample of the
same size (the floor, about 0). Prints one Markdown table, writes it (with notes) to --md, saves a
scatter plot to --png, and exits 1 if drift's energy exceeds --limit times the
PyTorch one for either dataset (checked only when both ran the same number of
steps), after printing.

  .venv/bin/python bench/py/toy_official_eval.py --drift results/toy_official.h5 \
      --pytorch checkerboard=results/toy_official_pytorch_checkerboard.h5 \
                swiss_roll=results/toy_official_pytorch_swiss_roll.h5
"""
import argparse
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from toy_official import DATASETS  # noqa: E402

ORDER = ["checkerboard", "swiss_roll"]
DRIFT_CELL = {"checkerboard": "0000", "swiss_roll": "0001"}   # the toml's grid order
REF_SEED, FLOOR_SEED = 20260417, 20261417   # used by neither training; refs use REF_SEED + k


def die(msg):
    print(f"toy_official_eval: error: {msg}", file=sys.stderr)
    sys.exit(2)


def _sum_dist(a, b):
    a = torch.as_tensor(np.asarray(a, np.float64))
    b = torch.as_tensor(np.asarray(b, np.float64))
    total = 0.0
    for s in range(0, len(a), 1024):                           # bounded memory
        total += torch.cdist(a[s:s + 1024], b).sum().item()
    return total


def energy_one(x, y):
    """Energy distance, unbiased U-statistic (self pairs left out), float64."""
    n, m = len(x), len(y)
    return (2 * _sum_dist(x, y) / (n * m) - _sum_dist(x, x) / (n * (n - 1))
            - _sum_dist(y, y) / (m * (m - 1)))


def energy(x, refs):
    """Mean of energy_one(x, ref) over the reference sets."""
    return float(np.mean([energy_one(x, r) for r in refs]))


def data_sample(name, n, seed):
    g = torch.Generator().manual_seed(seed)
    return DATASETS[name](n, g).double().numpy()


def read_drift(path, name):
    """Every cell of `name` in drift's results (one per seed), seed order."""
    import h5py
    out = []
    with h5py.File(path, "r") as f:
        for cid in sorted(f.get("cells", {})):
            g = f[f"cells/{cid}"]
            v = g.attrs.get("grid.data.dataset")
            v = (v.decode() if isinstance(v, bytes) else str(v)).strip('"') if v is not None \
                else {c: n for n, c in DRIFT_CELL.items()}.get(cid)
            if v != name:
                continue
            seed = g.attrs.get("grid.experiment.seed", b"0")
            seed = int((seed.decode() if isinstance(seed, bytes) else str(seed)).strip('"'))
            status = g.attrs.get("status", b"?")
            status = status.decode() if isinstance(status, bytes) else str(status)
            if "samples" not in g:
                die(f"{path}: /cells/{cid} ({name}, status {status}) has no samples")
            steps = sorted(k for k in g["samples"] if k.isdigit())
            if not steps:
                die(f"{path}: /cells/{cid}/samples is empty")
            n_rows = len(g["train"]) if "train" in g else 0
            step_secs = float(np.sum(g["train"]["seconds"])) if "train" in g and \
                "seconds" in g["train"].dtype.names else float("nan")
            out.append(dict(samples=g[f"samples/{steps[-1]}"][()], last_step=int(steps[-1]),
                            status=status, cell=cid, seed=seed, rows=n_rows,
                            steps_done=int(g.attrs.get("steps_done", n_rows)),
                            wall=float(g.attrs.get("wall_time_s", float("nan"))),
                            cpu=float(g.attrs.get("cpu_time_s", float("nan"))),
                            step_secs=step_secs,
                            real=g["real_samples"][()] if "real_samples" in g else None))
    if not out:
        die(f"{path}: no cell of dataset {name}")
    return sorted(out, key=lambda c: c["seed"])


def read_pytorch(path):
    import h5py
    with h5py.File(path, "r") as f:
        a = f.attrs
        return dict(samples=f["samples"][()], steps=int(a["steps"]), wall=float(a["wall_s"]),
                    cpu=float(a["cpu_s"]), rate=float(a["steps_per_s"]),
                    batch=int(a.get("batch", -1)), threads=int(a.get("threads", -1)))


def fmt(v, spec):
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(rows), 3, figsize=(10.5, 3.6 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        panels = [("drift (C++)", row["drift"]["samples"] if row["drift"] else None, "C0"),
                  ("PyTorch", row["torch"]["samples"], "C1"),
                  ("data", row["ref"], "C2")]
        for c, (title, pts, color) in enumerate(panels):
            ax = axes[r][c]
            if pts is None:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
            else:
                ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.6, color=color, linewidths=0)
            e = {0: row["e_drift"], 1: row["e_torch"], 2: row["floor"]}[c]
            ax.set_title(f"{row['name']}: {title}\nenergy {fmt(e, '.2e')}", fontsize=9)
            ax.set_xlim(-1.3, 1.3)
            ax.set_ylim(-1.3, 1.3)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drift", default="", help="drift's results file ('' or absent: no drift columns)")
    ap.add_argument("--require-drift", action="store_true",
                    help="error out if the drift file is missing")
    ap.add_argument("--pytorch", nargs="+", required=True, metavar="DATASET=FILE",
                    help="PyTorch outputs; a dataset may be given several times (seeds)")
    ap.add_argument("--n", type=int, default=8192, help="reference samples per set")
    ap.add_argument("--refs", type=int, default=4, help="independent reference sets")
    ap.add_argument("--limit", type=float, default=1.25,
                    help="acceptance: energy drift <= limit * energy PyTorch")
    ap.add_argument("--md", default="results/toy_official_compare.md")
    ap.add_argument("--png", default="results/toy_official_compare.png")
    a = ap.parse_args()
    torch.set_num_threads(1)

    torch_files = {}
    for item in a.pytorch:
        name, _, path = item.partition("=")
        if name not in DATASETS or not path:
            die(f"bad --pytorch entry {item!r} (want DATASET=FILE)")
        if not os.path.isfile(path):
            die(f"missing PyTorch output {path}")
        torch_files.setdefault(name, []).append(path)
    have_drift = bool(a.drift) and os.path.isfile(a.drift)
    if a.require_drift and not have_drift:
        die(f"missing drift results {a.drift or '(none given)'}")

    def ms(v):  # "mean ± sd (k)" of a list
        v = [x for x in v if not math.isnan(x)]
        if not v:
            return "—"
        return f"{np.mean(v):.2e} ± {np.std(v):.1e} ({len(v)})" if len(v) > 1 else f"{v[0]:.2e} (1)"

    rows = []
    for name in [n for n in ORDER if n in torch_files]:
        trs = [read_pytorch(p) for p in torch_files[name]]
        drs = read_drift(a.drift, name) if have_drift else []
        refs = [data_sample(name, a.n, REF_SEED + k) for k in range(a.refs)]
        flo = data_sample(name, a.n, FLOOR_SEED)
        for t in trs:
            t["e"] = energy(t["samples"], refs)
        for d in drs:
            d["e"] = energy(d["samples"], refs)
        rows.append(dict(name=name, torch=trs[0], torchs=trs, drift=drs[0] if drs else None,
                         drifts=drs, ref=refs[0], floor=energy(flo, refs),
                         e_torch=float(np.mean([t["e"] for t in trs])),
                         e_drift=float(np.mean([d["e"] for d in drs])) if drs else float("nan"),
                         e_real=energy(drs[0]["real"], refs) if drs and drs[0]["real"] is not None
                         else float("nan")))

    head = ("| dataset | energy drift: mean ± sd (seeds) | energy PyTorch: mean ± sd (seeds) "
            "| floor | ratio of means | steps/s drift | steps/s PyTorch | CPU s drift | CPU s PyTorch |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        drs, trs = r["drifts"], r["torchs"]
        ratio = r["e_drift"] / r["e_torch"] if drs else float("nan")
        d_rate = np.mean([d["rows"] / d["wall"] for d in drs]) if drs else float("nan")
        lines.append(
            f"| {r['name']} | {ms([d['e'] for d in drs])} | {ms([t['e'] for t in trs])} "
            f"| {r['floor']:.1e} | {fmt(ratio, '.2f')} | {fmt(d_rate, '.2f')} "
            f"| {np.mean([t['rate'] for t in trs]):.2f} "
            f"| {fmt(np.mean([d['cpu'] for d in drs]) if drs else None, '.1f')} "
            f"| {np.mean([t['cpu'] for t in trs]):.1f} |")
    table = "\n".join(lines)
    print(table)

    notes = []
    for r in rows:
        s = f"- {r['name']}: PyTorch " + ", ".join(
            f"seed file {i}: {t['steps']} steps, energy {t['e']:.2e}, {t['rate']:.2f} steps/s"
            for i, t in enumerate(r["torchs"]))
        for d in r["drifts"]:
            pure = d["rows"] / d["step_secs"] if d["step_secs"] > 0 else float("nan")
            s += (f"; drift cell {d['cell']} (seed {d['seed']}, {d['status']}): {d['steps_done']} "
                  f"steps, energy {d['e']:.2e}, {d['wall']:.1f} s wall for the whole cell, "
                  f"{fmt(pure, '.2f')} steps/s counting only the train rows' `seconds`")
        s += (f"; drift's own real_samples vs the references: energy {fmt(r['e_real'], '.1e')} "
              f"(about the floor if the datasets agree)")
        notes.append(s)
    md = ["# Toy demo: drift (C++) vs the PyTorch re-implementation", "",
          f"Energy distance (unbiased U-statistic, float64) of {a.n} final samples against "
          f"{a.refs} sets of {a.n} fresh data samples (seeds {REF_SEED}..{REF_SEED + a.refs - 1}), "
          f"averaged; floor: another {a.n} fresh data samples (seed {FLOOR_SEED}) against the "
          "same. steps/s drift: `train` rows / the cell's `wall_time_s` (whole cell: setup and "
          "evaluations included); steps/s PyTorch: steps / the training loop's wall time. "
          "CPU s: the cell process's `cpu_time_s`, the PyTorch training loop's "
          "`time.process_time()`.", "", table, "", *notes, ""]

    verdict, failed = [], False
    for r in rows:
        dr, tr = r["drift"], r["torch"]
        if not dr:
            continue
        if dr["steps_done"] != tr["steps"]:
            verdict.append(f"{r['name']}: acceptance not checked (drift {dr['steps_done']} steps, "
                           f"PyTorch {tr['steps']})")
            continue
        ok = r["e_drift"] <= a.limit * r["e_torch"]
        failed |= not ok
        verdict.append(f"{r['name']}: {'PASS' if ok else 'FAIL'} (mean energy drift "
                       f"{r['e_drift']:.3e} {'<=' if ok else '>'} {a.limit} x PyTorch "
                       f"{r['e_torch']:.3e})")
    if not have_drift:
        verdict.append("drift not evaluated (no results file): acceptance not checked")
    md += ["Acceptance (mean energy drift <= %g x mean energy PyTorch):" % a.limit, ""]
    md += [f"- {v}" for v in verdict] + [""]
    for v in verdict:
        print(v)

    os.makedirs(os.path.dirname(os.path.abspath(a.md)), exist_ok=True)
    with open(a.md, "w") as f:
        f.write("\n".join(md))
    plot(rows, a.png)
    print(f"wrote {a.md} and {a.png}")
    if failed:
        print(f"toy_official_eval: FAIL: drift's energy distance exceeds {a.limit}x PyTorch's",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
