#!/usr/bin/env python3
"""drift-report: summarize a drift results file (schemas/results.md).

    drift-report RESULTS.h5 [--out DIR] [--metric NAME] [--no-plots]

Prints /summary as a Markdown table (one row per cell: grid values, final
metrics, steps, wall time; failed and diverged cells marked, with the first
line of their error; per-class accuracies left out), a second table of the
metrics at each evaluation guidance alpha when there are some ([eval]
cfg_alphas: one row per cell and alpha), then writes three PNG plots beside the results file (or
into --out) and prints their paths:

  <name>_m_tau.png    m_tau per logged step, one line per cell and temperature,
                      log y-scale (the paper's Fig. 4)
  <name>_samples.png  2-D data only: generated (EMA) samples over the real ones,
                      rows = cells (at most 8), columns = logged steps (Fig. 3)
  <name>_metric.png   the chosen final metric per cell, with its floor
  <name>_cell<id>_grid.png
                      image data ([n, 1 or 3, H, W] samples) only: the last
                      step's samples of each cell as a grid, one row per class
                      (10 classes x 10 samples; without labels the first 100)
  <name>_cell<id>_grid_alpha<a>.png, <name>_cell<id>_grid_ema<r>.png
                      the same for the samples generated at guidance alpha = a
                      ([eval] cfg_alphas: /cells/<id>/alpha_samples/<a>) and
                      with the further weight average of rate r ([eval]
                      ema_rates: /cells/<id>/ema_samples/<r>)
  <name>_rollouts.png policies only: the last evaluation's closed-loop paths of
                      each cell (/cells/<id>/rollouts), coloured by mode,
                      failures dashed (at most 8 cells, 60 episodes each)

<name> is the results file name without ".h5". Exits 1 with a one-line error
naming the file (and dataset) when it cannot be read.
"""
import argparse
import math
import errno
import os
import re
import sys

PROG = "drift-report"
MAX_SAMPLE_ROWS = 8
MAX_SAMPLE_COLS = 6
MAX_ROLLOUT_PATHS = 60  # paths drawn per cell (all episodes count in the title's shares)
M_TAU_RE = re.compile(r"^m_tau_([^/]+)$")  # the feature-averaged m_tau columns


class ReportError(Exception):
    """An error reported as one line, without a traceback."""


def fail(msg):
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    return 1


# ----------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------
def text(v):
    """An HDF5 string (bytes from compound fields, str from attributes) as str."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def table(ds):
    """A compound dataset as a pandas DataFrame, variable-length strings decoded."""
    import pandas as pd
    df = pd.DataFrame(ds[()])
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].map(text)
    return df


def attr(obj, name, default=None):
    v = obj.attrs.get(name, default)
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        v = v.tolist()
    if isinstance(v, list):
        return [text(x) for x in v]
    return text(v)


def open_results(path):
    import h5py
    if not os.path.exists(path):
        raise ReportError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ReportError(f"{path}: is a directory, not a results file")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as e:
        raise ReportError(f"{path}: cannot read: {e}")
    if not is_hdf5:
        raise ReportError(f"{path}: not an HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ReportError(f"{path}: cannot open as HDF5: {e}")
    if "summary" not in f:
        f.close()
        raise ReportError(f"{path}: no /summary dataset (not a drift results file, or no cell has finished)")
    if not isinstance(f["summary"], h5py.Dataset) or f["summary"].dtype.names is None:
        f.close()
        raise ReportError(f"{path}: /summary is not a compound dataset")
    return f


def cell_group(f, cell):
    name = f"cells/{int(cell):04d}"
    return f[name] if name in f else None


def first_line(s):
    s = (s or "").strip()
    return s.splitlines()[0].strip() if s else ""


def grid_keys(f, summary):
    keys = attr(f, "grid_keys")
    if isinstance(keys, str):
        keys = [keys]
    if keys is not None:  # present, possibly empty (an experiment without [grid])
        return [k for k in keys if k in summary.columns]
    # No root attribute: every column that is neither fixed nor a metric.
    fixed = {"cell", "status", "steps_done", "wall_time_s", "error"}
    return [c for c in summary.columns if c not in fixed and not c.startswith("final_")]


def cell_note(f, row):
    """Why a cell is not `done`: its error's first line, or where it diverged."""
    status = row["status"]
    if status == "done":
        return ""
    g = cell_group(f, row["cell"])
    if g is None:
        return f"no /cells/{int(row['cell']):04d} group"
    err = first_line(attr(g, "error", ""))
    if err:
        return err
    if status == "diverged" and "train" in g:
        import numpy as np
        tr = g["train"][()]
        cols = [c for c in tr.dtype.names if c == "loss" or M_TAU_RE.match(c)]
        if cols and len(tr):
            bad = np.zeros(len(tr), dtype=bool)
            for c in cols:
                bad |= ~np.isfinite(tr[c])
            if bad.any():
                return f"loss/m_tau not finite from step {int(tr['step'][bad.argmax()])}"
    if status != "done":
        tail = [l for l in (attr(g, "stderr_tail", "") or "").splitlines() if l.strip()]
        if tail:
            return "stderr: " + tail[-1].strip()
    return ""


def label_keys(summary, keys):
    """The grid keys worth naming in plot labels: those that vary across cells."""
    varying = [k for k in keys if summary[k].astype(str).nunique() > 1]
    return varying or keys


def cell_label(row, keys, sep=" "):
    """Short legend text: the cell index and its grid values (last part of each key
    when that is unambiguous)."""
    short = [k.split(".")[-1] for k in keys]
    names = [s if short.count(s) == 1 else k for s, k in zip(short, keys)]
    parts = [f"{n}={fmt(row[k])}" for n, k in zip(names, keys)]
    return sep.join([f"{int(row['cell']):04d}"] + parts)


# ----------------------------------------------------------------------------
# formatting
# ----------------------------------------------------------------------------
def fmt(v):
    import numpy as np
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.4g}"
    return str(v)


def md_cell(s):
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


# Evaluation variants: the metrics again at each [eval] cfg_alphas value
# ("<metric>/alpha_<a>") and with each [eval] ema_rates average ("<metric>/ema_<r>").
VARIANT_COL_RE = re.compile(r"^final_(.+)/(alpha|ema)_([^/]+)$")
VARIANT_CAPTIONS = {
    "alpha": "Metrics at each evaluation guidance alpha ([eval] cfg_alphas; the table above is alpha = 1):",
    "ema": "Metrics of each further EMA of the weights ([eval] ema_rates; the table above is [train] ema):",
}
PER_CLASS_RE = re.compile(r"^final_accuracy_[0-9]+(/(alpha|ema)_.*)?$")  # per-class accuracies


def in_main_table(c):
    """Variant and per-class columns go to the variant tables / stay in the file."""
    return not VARIANT_COL_RE.match(c) and not PER_CLASS_RE.match(c)


def variant_table(summary, keys, kind):
    """Markdown: one row per (cell, value of `kind`: "alpha" or "ema") with the
    metrics evaluated at that value; None when there are none."""
    by = {}
    for c in summary.columns:
        m = VARIANT_COL_RE.match(c)
        if m and m.group(2) == kind and not PER_CLASS_RE.match(c):
            by.setdefault(m.group(1), {})[m.group(3)] = c
    if not by:
        return None
    metrics = list(by)
    alphas = sorted({a for d in by.values() for a in d}, key=_tau_key)
    header = ["cell"] + keys + [kind] + metrics
    lines = ["| " + " | ".join(md_cell(c) for c in header) + " |",
             "|" + "|".join("---:" if c in ("cell", kind) or c in metrics else "---" for c in header) + "|"]
    for _, r in summary.iterrows():
        for a in alphas:
            vals = [f"{int(r['cell']):04d}"] + [fmt(r[k]) for k in keys] + [a]
            vals += [fmt(r[by[m][a]]) if a in by[m] else "" for m in metrics]
            lines.append("| " + " | ".join(md_cell(v) for v in vals) + " |")
    return "\n".join(lines)


def markdown_table(f, summary, keys):
    final = [c for c in summary.columns if c.startswith("final_") and in_main_table(c)]
    rest = [c for c in summary.columns
            if c not in keys and c not in final and c not in ("cell", "status") and in_main_table(c)]
    cols = ["cell", "status"] + keys + final + rest
    notes = [cell_note(f, r) for _, r in summary.iterrows()]
    has_notes = any(notes)
    header = cols + (["note"] if has_notes else [])
    from pandas.api.types import is_numeric_dtype
    right = {c for c in cols if c == "cell" or is_numeric_dtype(summary[c])}
    lines = ["| " + " | ".join(md_cell(c) for c in header) + " |",
             "|" + "|".join("---:" if c in right else "---" for c in header) + "|"]
    for (_, r), note in zip(summary.iterrows(), notes):
        vals = []
        for c in cols:
            if c == "cell":
                vals.append(f"{int(r[c]):04d}")
            elif c == "status":
                vals.append(r[c] if r[c] == "done" else f"**{str(r[c]).upper()}**")
            else:
                vals.append(fmt(r[c]))
        if has_notes:
            vals.append(note)
        lines.append("| " + " | ".join(md_cell(v) for v in vals) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------
def plot_m_tau(f, summary, keys, path, title):
    import numpy as np
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    n_lines = 0
    taus_all = sorted({m.group(1) for c in summary.columns
                       for m in [re.match(r"^final_m_tau_([^/]+)$", c)] if m}, key=_tau_key)
    for i, (_, r) in enumerate(summary.iterrows()):
        g = cell_group(f, r["cell"])
        if g is None or "train" not in g:
            continue
        tr = g["train"][()]
        if tr.dtype.names is None or "step" not in tr.dtype.names or not len(tr):
            continue
        taus = [m.group(1) for c in tr.dtype.names for m in [M_TAU_RE.match(c)] if m]
        for t in taus:
            if t not in taus_all:
                taus_all.append(t)
        for t in sorted(taus, key=_tau_key):
            y = np.asarray(tr[f"m_tau_{t}"], dtype=float).copy()
            y[~np.isfinite(y) | (y <= 0)] = np.nan
            label = f"{cell_label(r, keys)} τ={t}"
            if r["status"] != "done":
                label += f" ({r['status']})"
            ax.plot(tr["step"], y, color=colors[i % len(colors)],
                    linestyle=styles[taus_all.index(t) % len(styles)], linewidth=1.2, label=label)
            n_lines += 1
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(r"$m_\tau = \|V\|^2$ (raw, feature-averaged)")
    ax.set_title(f"{title}: drift magnitude per temperature")
    ax.grid(True, which="both", alpha=0.3)
    if n_lines:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.text(0.5, 0.5, "no m_tau logged", transform=ax.transAxes, ha="center")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _tau_key(t):
    try:
        return (0, float(t))
    except ValueError:
        return (1, t)


def sample_steps(g):
    """{step: dataset} of /cells/<id>/samples (labels datasets skipped)."""
    import h5py
    out = {}
    if g is None or "samples" not in g or not isinstance(g["samples"], h5py.Group):
        return out
    for name, ds in g["samples"].items():
        if not isinstance(ds, h5py.Dataset) or name.endswith("_labels"):
            continue
        step = ds.attrs.get("step")
        try:
            step = int(step) if step is not None else int(name)
        except ValueError:
            continue
        out[step] = ds
    return out


def is_image(ds):
    return ds is not None and len(ds.shape) == 4 and ds.shape[1] in (1, 3)


def image_grid(x, labels, classes=10, per_class=10):
    """[n, C, H, W] samples in [-1, 1] -> an [rows*H, cols*W(, 3)] array in [0, 1]:
    row c holds the first `per_class` samples labelled c (blank where fewer);
    without labels, the first classes*per_class samples row by row."""
    import numpy as np
    n, C, H, W = x.shape
    pad = 2
    grid = np.ones((classes * (H + pad) - pad, per_class * (W + pad) - pad, C), dtype=np.float64)
    if labels is None:
        picks = [list(range(r * per_class, min(n, (r + 1) * per_class))) for r in range(classes)]
    else:
        picks = [list(np.flatnonzero(labels == c)[:per_class]) for c in range(classes)]
    for r, idx in enumerate(picks):
        for j, i in enumerate(idx):
            img = np.clip((np.asarray(x[i], dtype=np.float64) + 1) / 2, 0, 1).transpose(1, 2, 0)
            grid[r * (H + pad):r * (H + pad) + H, j * (W + pad):j * (W + pad) + W] = img
    return grid[:, :, 0] if C == 1 else grid


def write_grid(ds, labels_ds, path):
    import numpy as np
    import matplotlib.pyplot as plt
    x = ds[()]
    labels = np.asarray(labels_ds[()]) if labels_ds is not None else None
    g = image_grid(x, labels)
    if g.ndim == 2:
        plt.imsave(path, g, cmap="gray", vmin=0, vmax=1)
    else:
        plt.imsave(path, g)


def plot_image_grids(f, summary, out, name):
    """One PNG grid per cell (and per guidance alpha and further EMA) with image samples; returns the paths."""
    import h5py
    written = []
    for _, r in summary.iterrows():
        g = cell_group(f, r["cell"])
        steps = {s: ds for s, ds in sample_steps(g).items() if is_image(ds)}
        if not steps:
            continue
        cell = int(r["cell"])
        ds = steps[max(steps)]
        lab = ds.parent.get(ds.name.rsplit("/", 1)[1] + "_labels")
        p = os.path.join(out, f"{name}_cell{cell:04d}_grid.png")
        write_grid(ds, lab, p)
        written.append(p)
        for kind in ("alpha", "ema"):  # <kind>_samples/<value>/<step>
            variants = g.get(f"{kind}_samples")
            if not isinstance(variants, h5py.Group):
                continue
            for a, ag in sorted(variants.items(), key=lambda kv: _tau_key(kv[0])):
                if not isinstance(ag, h5py.Group):
                    continue
                names = sorted(k for k in ag if not k.endswith("_labels") and is_image(ag[k]))
                if not names:
                    continue
                p = os.path.join(out, f"{name}_cell{cell:04d}_grid_{kind}{a}.png")
                write_grid(ag[names[-1]], ag.get(names[-1] + "_labels"), p)
                written.append(p)
    return written


def plot_rollouts(f, summary, keys, path, title):
    """Closed-loop paths per cell. Returns a reason string when nothing could be plotted."""
    import numpy as np
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle
    cells = []
    for _, r in summary.iterrows():
        g = cell_group(f, r["cell"]).get("rollouts")
        if g is not None and "positions" in g:
            cells.append((r, g))
    if not cells:
        return "no /cells/<id>/rollouts"
    cells = cells[:MAX_SAMPLE_ROWS]
    fig, axes = plt.subplots(1, len(cells), figsize=(3.2 * len(cells), 3.6), squeeze=False)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:purple"]
    for ax, (r, g) in zip(axes[0], cells):
        pos = np.asarray(g["positions"][()], dtype=float)
        ok = np.asarray(g["success"][()]).astype(bool)
        mode = np.asarray(g["mode"][()])
        names = text(attr(g, "mode_names", "")).split("\n")
        task = text(attr(g, "task", ""))
        if task == "obstacle":
            ax.add_patch(Circle((0, 0), 0.3, color="0.85"))
        for i in range(min(len(pos), MAX_ROLLOUT_PATHS)):
            p = pos[i][np.isfinite(pos[i]).all(axis=1)]
            c = colours[mode[i] % len(colours)] if mode[i] >= 0 else "0.4"
            ax.plot(p[:, 0], p[:, 1], color=c, lw=0.7, alpha=0.7, ls="-" if ok[i] else "--")
        shares = ", ".join(f"{n} {np.mean(mode == k):.0%}" for k, n in enumerate(names) if n)
        ax.set_title(f"{cell_label(r, keys)}\n{task}: success {ok.mean():.0%}\n{shares}", fontsize=8)
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1, 1)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
    n_ep = len(cells[0][1]["success"])
    drawn = f"first {MAX_ROLLOUT_PATHS} of {n_ep} episodes drawn; " if n_ep > MAX_ROLLOUT_PATHS else ""
    fig.suptitle(f"{title}: closed-loop rollouts (step {int(attr(cells[0][1], 'step', 0))}; {drawn}dashed: failed)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def is_2d(ds):
    return ds is not None and len(ds.shape) == 2 and ds.shape[1] == 2


def plot_samples(f, summary, keys, path, title):
    """Fig. 3 layout. Returns a reason string when nothing could be plotted."""
    import numpy as np
    import matplotlib.pyplot as plt
    rows = []
    for _, r in summary.iterrows():
        g = cell_group(f, r["cell"])
        steps = {s: ds for s, ds in sample_steps(g).items() if is_2d(ds)}
        if steps:
            real = g["real_samples"] if "real_samples" in g and is_2d(g["real_samples"]) else None
            rows.append((r, steps, real))
    if not rows:
        return "no 2-D samples in /cells/<id>/samples"
    skipped = len(rows) - MAX_SAMPLE_ROWS
    rows = rows[:MAX_SAMPLE_ROWS]
    all_steps = sorted({s for _, st, _ in rows for s in st})
    if len(all_steps) > MAX_SAMPLE_COLS:
        idx = np.unique(np.round(np.linspace(0, len(all_steps) - 1, MAX_SAMPLE_COLS)).astype(int))
        all_steps = [all_steps[i] for i in idx]
    nr, nc = len(rows), len(all_steps)
    fig, grid = plt.subplots(nr, nc + 1, figsize=(2.2 * nc + 2.2, 2.2 * nr + 0.7), squeeze=False,
                             gridspec_kw={"width_ratios": [1.0] + [1.0] * nc})
    for i, (r, _, _) in enumerate(rows):
        ax = grid[i, 0]
        ax.axis("off")
        label = cell_label(r, keys, sep="\n")
        if r["status"] != "done":
            label += f"\n({r['status']})"
        ax.text(0.95, 0.5, label, transform=ax.transAxes, ha="right", va="center", fontsize=8,
                color="black" if r["status"] == "done" else "tab:red")
    axes = grid[:, 1:]
    for i, (r, steps, real) in enumerate(rows):
        real_xy = np.asarray(real[()], dtype=float) if real is not None else None
        pts = [real_xy] if real_xy is not None else []
        gen = {s: np.asarray(steps[s][()], dtype=float) for s in all_steps if s in steps}
        pts += list(gen.values())
        allp = np.concatenate([p[np.isfinite(p).all(axis=1)] for p in pts]) if pts else np.zeros((0, 2))
        if len(allp):
            lo, hi = allp.min(axis=0), allp.max(axis=0)
            c, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 0.5) * 1.08
        else:
            c, half = np.zeros(2), 1.0
        for j, s in enumerate(all_steps):
            ax = axes[i, j]
            if real_xy is not None:
                ax.scatter(real_xy[:, 0], real_xy[:, 1], s=2, c="tab:blue", alpha=0.35, linewidths=0,
                           label="real")
            if s in gen:
                xy = gen[s]
                ax.scatter(xy[:, 0], xy[:, 1], s=2, c="tab:orange", alpha=0.6, linewidths=0,
                           label="generated")
            else:
                ax.text(0.5, 0.5, "not logged", transform=ax.transAxes, ha="center", va="center",
                        fontsize=8, color="gray")
            ax.set_xlim(c[0] - half, c[0] + half)
            ax.set_ylim(c[1] - half, c[1] + half)
            ax.set_aspect("equal")
            ax.tick_params(labelsize=6)
            if i == 0:
                ax.set_title(f"step {s}", fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes.flat:
        h, l = ax.get_legend_handles_labels()
        if len(h) > len(handles):
            handles, labels = h, l
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=8, markerscale=4)
    sup = f"{title}: generated (EMA) vs real samples"
    if skipped > 0:
        sup += f" (first {MAX_SAMPLE_ROWS} cells of {MAX_SAMPLE_ROWS + skipped})"
    fig.suptitle(sup, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.92, 0.96))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def choose_metric(summary, metric):
    final = [c for c in summary.columns if c.startswith("final_")]
    if metric:
        for cand in (metric, "final_" + metric):
            if cand in final:
                return cand
        raise ReportError(f"metric '{metric}' not in /summary (final_* columns: {', '.join(final) or 'none'})")
    for c in final:
        if not c.endswith("_floor"):
            return c
    return None  # nothing to plot; not an error unless --metric asked for one


def plot_metric(summary, keys, column, path, title):
    import numpy as np
    import matplotlib.pyplot as plt
    floor_col = column + "_floor"
    y = summary[column].to_numpy(dtype=float)
    floor = summary[floor_col].to_numpy(dtype=float) if floor_col in summary.columns else None
    x = np.arange(len(summary))
    crowded = len(summary) > 10  # then labels are rotated and cells narrower
    width = (0.45 if crowded else 1.9) * len(summary) + 1.5
    fig, ax = plt.subplots(figsize=(min(24.0, max(5.0, width)), 5.0))
    colors = ["tab:blue" if s == "done" else ("tab:red" if s == "failed" else "tab:purple")
              for s in summary["status"]]
    finite = np.isfinite(y)
    ax.scatter(x[finite], y[finite], c=[colors[i] for i in np.flatnonzero(finite)], s=40, zorder=3,
               label=f"{column} (done cell)")
    if not _use_log(y, floor):  # stems from zero; on a log scale the points stand alone
        ax.vlines(x[finite], 0, y[finite], colors="lightgray", linewidth=6, zorder=1)
    if floor is not None and np.isfinite(floor).any():
        ff = np.isfinite(floor)
        ax.hlines(floor[ff], x[ff] - 0.35, x[ff] + 0.35, colors="black", linestyles="--",
                  linewidth=1.2, zorder=2, label=f"{floor_col} (two real samples)")
    if _use_log(y, floor):
        ax.set_yscale("log")
    for i in np.flatnonzero(~finite):
        ax.annotate(f"{summary['status'].iloc[i]}\n(no value)", (x[i], 0.02), xycoords=("data", "axes fraction"),
                    ha="center", fontsize=7, color=colors[i])
    labels = [cell_label(r, keys, sep=" " if crowded else "\n") for _, r in summary.iterrows()]
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=7, rotation=90 if crowded else 0)
    for status, color in (("failed", "tab:red"), ("diverged", "tab:purple")):
        if (summary["status"] == status).any():
            ax.scatter([], [], c=color, s=40, label=f"{status} cell")
    ax.set_xlim(-0.6, len(summary) - 0.4)
    ax.set_ylabel(column)
    has_floor = floor is not None and np.isfinite(floor).any()
    ax.set_title(f"{title}: {column} per cell" + (" (dashed: floor)" if has_floor else ""))
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _use_log(y, floor):
    import numpy as np
    vals = y[np.isfinite(y)]
    if floor is not None:
        vals = np.concatenate([vals, floor[np.isfinite(floor)]])
    return len(vals) > 0 and (vals > 0).all() and vals.max() / vals.min() > 50


# ----------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("results", help="a results file written by drift-run (results/<name>.h5)")
    ap.add_argument("--out", metavar="DIR", help="where to write the PNGs (default: beside the results file)")
    ap.add_argument("--metric", metavar="NAME",
                    help="metric for <name>_metric.png, e.g. mmd or final_mmd "
                         "(default: the first final_* column of /summary that is not a floor)")
    ap.add_argument("--no-plots", action="store_true", help="print the table only")
    args = ap.parse_args(argv)

    try:
        import h5py  # noqa: F401
        import numpy  # noqa: F401
        import pandas  # noqa: F401
    except ImportError as e:
        return fail(f"{e.name} is not installed for {sys.executable} (run scripts/setup.sh)")

    try:
        f = open_results(args.results)
    except ReportError as e:
        return fail(str(e))

    path = args.results
    with f:
        try:
            summary = table(f["summary"])
        except Exception as e:  # noqa: BLE001 - a broken file, reported in one line
            return fail(f"{path}: cannot read /summary: {e}")
        for need in ("cell", "status"):
            if need not in summary.columns:
                return fail(f"{path}: /summary has no '{need}' field")
        keys = grid_keys(f, summary)
        lkeys = label_keys(summary, keys)
        name = os.path.splitext(os.path.basename(path))[0]
        exp = attr(f, "experiment_name") or name

        metric = None
        if not args.no_plots:
            try:
                metric = choose_metric(summary, args.metric)
            except ReportError as e:
                return fail(f"{path}: {e}")

        n = len(summary)
        counts = summary["status"].value_counts()
        print(f"# {exp} ({path})")
        print()
        print(f"{n} cells" + (": " if n else "") + ", ".join(f"{counts[s]} {s}" for s in counts.index)
              + (f"; grid: {', '.join(keys)}" if keys else ""))
        print()
        print(markdown_table(f, summary, keys))
        for kind, caption in VARIANT_CAPTIONS.items():
            vt = variant_table(summary, keys, kind)
            if vt:
                print()
                print(caption)
                print()
                print(vt)

        if args.no_plots:
            return 0
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot  # noqa: F401
        except ImportError:
            return fail(f"matplotlib is not installed for {sys.executable} (run scripts/setup.sh, or use --no-plots)")

        out = args.out or os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as e:
            return fail(f"{out}: cannot create output directory: {e.strerror}")
        written = []
        try:
            p = os.path.join(out, f"{name}_m_tau.png")
            plot_m_tau(f, summary, lkeys, p, exp)
            written.append(p)
            p = os.path.join(out, f"{name}_samples.png")
            why = plot_samples(f, summary, lkeys, p, exp)
            if why:
                print(f"\nskipped {p}: {why}", file=sys.stderr)
            else:
                written.append(p)
            p = os.path.join(out, f"{name}_grids")
            written += plot_image_grids(f, summary, out, name)
            p = os.path.join(out, f"{name}_rollouts.png")
            if plot_rollouts(f, summary, lkeys, p, exp) is None:
                written.append(p)
            p = os.path.join(out, f"{name}_metric.png")
            if metric is None:
                print(f"skipped {p}: /summary has no final_* metric column", file=sys.stderr)
            else:
                plot_metric(summary, lkeys, metric, p, exp)
                written.append(p)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                # No half-written image is left behind; the ones written before stay.
                if os.path.exists(p):
                    os.remove(p)
                return fail(f"{p}: cannot write, the device is full ({e.strerror or e})")
            if getattr(e, "filename", None):
                return fail(f"{p}: cannot write: {e.strerror or e}")
            return fail(f"{path}: cannot read while plotting {os.path.basename(p)}: {e}")
        except (KeyError, ValueError, TypeError) as e:
            return fail(f"{path}: unexpected layout while plotting {os.path.basename(p)}: {e}")
        print()
        for p in written:
            print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    try:
        rc = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `drift-report x.h5 | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        rc = 1
    sys.exit(rc)
