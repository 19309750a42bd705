"""Draws docs/img/fmnist_capacity.png (docs/results/images.md, "Generator
capacity"): validation FID of fmnist_best's generator variants against the
training step and against training CPU on the machine that ran them, from
results/fmnist_capacity.h5 and, where present, results/fmnist_blocks2.h5.
Run from the repository root after both studies:

    .venv/bin/python docs/img/make_capacity_figure.py
"""
import os
import tomllib

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

# Training CPU-s per step on the AMD EPYC of runs L and M (images.md, the
# capacity table: cpu_time_s over steps, evaluations included, the MAE
# pre-training and the cache build taken out). Three blocks: 1.17x two
# blocks' step, measured side by side (that cell's own cpu_time_s ran under
# heavier contention).
COST = {(64, 1): 0.25, (128, 1): 0.46, (64, 2): 0.31, (64, 3): 0.36}
STYLE = {(64, 1): ("recipe (width 64, 1 block)", "tab:blue"),
         (128, 1): ("width 128", "tab:orange"),
         (64, 2): ("2 blocks per resolution", "tab:green"),
         (64, 3): ("3 blocks per resolution", "tab:purple")}


def curves(path):
    """(width, blocks, seed, steps, fids) per cell of a results file."""
    out = []
    with h5py.File(path, "r") as f:
        for cell in f["cells"].values():
            if "eval" not in cell:
                continue
            cfg = tomllib.loads(cell.attrs["config_toml"])  # every key, defaults included
            gen = cfg["generator"]
            e = cell["eval"][()]
            out.append((gen["width"], gen["blocks"], cfg["experiment"]["seed"], list(e["step"]), list(e["fid"])))
    return out


def main():
    cells = curves("results/fmnist_capacity.h5")
    if os.path.exists("results/fmnist_blocks2.h5"):
        cells += curves("results/fmnist_blocks2.h5")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120, sharey=True)
    seen = set()
    for width, blocks, seed, steps, fids in cells:
        if (width, blocks) not in STYLE:
            continue  # a cell of the study not run yet or not drawn
        label, colour = STYLE[(width, blocks)]
        key = (width, blocks)
        lw, alpha = (2.0, 1.0) if seed == 2 else (1.0, 0.5)
        text = None if key in seen else label
        seen.add(key)
        axes[0].plot(steps, fids, "o-", color=colour, lw=lw, alpha=alpha, ms=3, label=text)
        cpu_min = [s * COST[key] / 60 for s in steps]
        axes[1].plot(cpu_min, fids, "o-", color=colour, lw=lw, alpha=alpha, ms=3)
    axes[0].set_xlabel("training step")
    axes[1].set_xlabel("training CPU-min (AMD EPYC, 1 thread; evaluations included)")
    axes[0].set_ylabel("validation FID (α = 1, EMA 0.999)")
    for a in axes:
        a.grid(True, alpha=0.3)
    axes[0].legend(title="seed 2 bold; seeds 3 and 0 thin")
    fig.suptitle("fmnist_best's generator: width against depth (studies/fmnist_capacity.toml, "
                 "studies/fmnist_blocks2.toml)", fontsize=10)
    fig.tight_layout()
    fig.savefig("docs/img/fmnist_capacity.png", bbox_inches="tight", facecolor="white")
    print("wrote docs/img/fmnist_capacity.png")


if __name__ == "__main__":
    main()
