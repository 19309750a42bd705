"""Read a drift results file with h5py and pandas (see docs/guide/reading_results.md).

    python3 docs/read_results_example.py results/example.h5 [m_tau.png]

Prints the experiment's grid, /summary, the done and the not-done cells, one
cell's training log, evaluations and samples; with a second argument, also
plots m_tau of every cell (needs matplotlib).
"""
import sys

import h5py
import numpy as np
import pandas as pd


def table(ds):
    """A compound dataset as a DataFrame. h5py returns the variable-length
    strings of compound fields as bytes: decode them."""
    df = pd.DataFrame(ds[()])
    for col in df.columns:
        if df[col].dtype == object:
            df[col] = df[col].map(lambda v: v.decode() if isinstance(v, bytes) else v)
    return df


path = sys.argv[1]
with h5py.File(path, "r") as f:
    grid_keys = [str(k) for k in f.attrs["grid_keys"]]
    print(f"experiment: {f.attrs['experiment_name']} ({f.attrs['n_cells']} cells)")
    print(f"grid keys: {', '.join(grid_keys)}")

    # One row per cell: status, grid values, final metrics.
    summary = table(f["summary"])
    print(f"summary: {len(summary)} rows x {len(summary.columns)} columns")
    print(f"columns: {', '.join(summary.columns)}")
    metrics = [c for c in summary.columns if c.startswith("final_") and not c.endswith("_floor")]
    print(summary[["cell", "status", *grid_keys, metrics[0]]].to_string(index=False))

    # Select the cells that finished; say why the others did not.
    done = summary[summary["status"] == "done"]
    print(f"done cells: {' '.join(f'{c:04d}' for c in done['cell'])}")
    for _, row in summary[summary["status"] != "done"].iterrows():
        attrs = f[f"cells/{row['cell']:04d}"].attrs
        print(f"cell {row['cell']:04d} {row['status']}: {attrs.get('error', '(no error attribute)')}")

    # One cell's training log: step, loss, m_tau_<tau>, grad_norm, lr, seconds.
    cell = f"cells/{done['cell'].iloc[0]:04d}"
    print(f"{cell}: {f[cell].attrs['grid']}")
    train = table(f[cell + "/train"])
    m_tau = [c for c in train.columns if c.startswith("m_tau_") and "/" not in c]
    print(f"{cell}/train: {len(train)} rows; m_tau columns: {', '.join(m_tau)}")
    print(train[["step", *m_tau]].iloc[[0, -1]].to_string(index=False))

    # Its evaluations, next to the floor (the same metric between two real samples).
    evals = table(f[cell + "/eval"])
    name = metrics[0].removeprefix("final_")
    print(f"{cell}/eval: {len(evals)} rows")
    print(evals[["step", name, name + "_floor"]].to_string(index=False))

    # Samples: one dataset per logged step, named by the 10-digit step.
    group = f[cell + "/samples"]
    steps = sorted(int(ds.attrs["step"]) for key, ds in group.items() if not key.endswith("_labels"))
    last = group[f"{steps[-1]:010d}"][()]
    print(f"{cell}/samples: steps {steps}; step {steps[-1]}: shape {last.shape}, dtype {last.dtype}")
    if "real_samples" in f[cell]:
        real = f[cell + "/real_samples"][()]
        gap = np.linalg.norm(last.mean(axis=0) - real.mean(axis=0))
        print(f"{cell}/real_samples: shape {real.shape}; |mean(gen) - mean(real)| = {gap:.3f}")

    # m_tau of every cell on a log scale (the paper's Fig. 4).
    if len(sys.argv) > 2:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 5))
        for _, row in summary.iterrows():
            g = f[f"cells/{row['cell']:04d}"]
            tr = table(g["train"])
            for col in [c for c in tr.columns if c.startswith("m_tau_") and "/" not in c]:
                ax.plot(tr["step"], tr[col], label=f"{row['cell']:04d} {g.attrs['grid']} {col}")
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("m_tau")
        ax.legend(fontsize=6)
        fig.savefig(sys.argv[2], dpi=100, bbox_inches="tight")
        print(f"wrote {sys.argv[2]}")
