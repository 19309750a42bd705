"""Paths of drift-rollout --out files, one panel per file: green episodes
succeeded, red ones failed; the obstacle task's disc and goal drawn.

  .venv/bin/python bench/py/plot_rollouts.py OUT.png A.h5 "title A" B.h5 "title B" ... [--episodes 60]
"""
import argparse

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("pairs", nargs="+", help="FILE TITLE, repeated")
    ap.add_argument("--episodes", type=int, default=60)
    a = ap.parse_args()
    pairs = list(zip(a.pairs[::2], a.pairs[1::2]))
    cols = min(3, len(pairs))
    rows = (len(pairs) + cols - 1) // cols
    fig, axs = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    for ax, (path, title) in zip(axs.flat, pairs):
        with h5py.File(path, "r") as f:
            n = min(a.episodes, len(f["success"]))
            for i in range(n):
                p = f[f"episodes/{i}/positions"][()]
                ax.plot(p[:, 0], p[:, 1], color="tab:green" if f["success"][i] else "tab:red", lw=0.7, alpha=0.8)
            if f.attrs["task"] == "obstacle":
                ax.add_patch(plt.Circle((0, 0), 0.3, color="gray", alpha=0.5))
                ax.add_patch(plt.Circle((0, 0.8), 0.08, color="tab:green", alpha=0.3))
            ax.set_title(f"{title}\nsuccess {100 * f.attrs['success_rate']:.0f}% ({n} of {len(f['success'])} shown)",
                         fontsize=9)
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1, 1)
        ax.set_aspect("equal")
    for ax in list(axs.flat)[len(pairs):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(a.out, dpi=80)


if __name__ == "__main__":
    main()
