"""Golden cases of the default drift field (docs/method.md §2), computed in
float64 by the PyTorch reference in bench/py/drift_field.py.

    .venv/bin/python bench/py/make_golden.py tests/golden          # write the cases
    .venv/bin/python bench/py/make_golden.py --check DIR           # recompute DIR's cases

Writing: one HDF5 file per case in the layout of tests/golden/README.md
(inputs in float32 at the root, `expected/*` in float64). The inputs come from
a fixed seed, so the same command writes the same numbers.

--check: reads every *.h5 case in DIR (the same layout, written by any
implementation), recomputes its expected outputs from its inputs with the
reference, and exits 1 naming the case and output that differ by more than
1e-9 (relative). The test suite runs it on tests/golden, and on a second,
independently made set of cases where one is given.
"""
import argparse
import glob
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drift_field import drift_field  # noqa: E402

PAPER_TEMPERATURES = (0.02, 0.05, 0.2)


def case_inputs(name, g):
    """The inputs of case `name` from generator g: dict of float32 arrays + temperatures."""
    def normal(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift).float()

    def weights(*shape, lo=0.3, hi=2.5):
        return (lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)).float()

    temps = PAPER_TEMPERATURES
    if name == "toy2d":
        # One 2-D problem, no extra negatives: generated cloud between two data modes.
        B, Cg, Cp, Cn, S = 1, 8, 8, 0, 2
        gen = normal(B, Cg, S, scale=0.7)
        modes = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
        pos = (modes[torch.arange(Cp) % 2][None] + 0.3 * normal(B, Cp, S)).float()
        neg = normal(B, Cn, S)
        w = (torch.ones(B, Cg), torch.ones(B, Cp), torch.ones(B, Cn))
    elif name == "cfg_weighted":
        # Extra negatives with non-uniform weights (classifier-free guidance, §5).
        B, Cg, Cp, Cn, S = 4, 16, 12, 5, 7
        gen, pos, neg = normal(B, Cg, S), normal(B, Cp, S, shift=0.5), normal(B, Cn, S)
        w = (torch.ones(B, Cg), torch.ones(B, Cp), weights(B, Cn))
    elif name == "weighted_all":
        # Every weight vector non-uniform, two temperatures.
        B, Cg, Cp, Cn, S = 3, 10, 9, 6, 5
        gen, pos, neg = normal(B, Cg, S), normal(B, Cp, S, shift=-0.4), normal(B, Cn, S, scale=1.5)
        w = (weights(B, Cg), weights(B, Cp), weights(B, Cn))
        temps = (0.05, 0.5)
    elif name == "single_temp_wide":
        # One temperature, 64 dimensions, no extra negatives.
        B, Cg, Cp, Cn, S = 3, 32, 32, 0, 64
        gen, pos, neg = normal(B, Cg, S), normal(B, Cp, S, shift=0.2), normal(B, Cn, S)
        w = (torch.ones(B, Cg), torch.ones(B, Cp), torch.ones(B, Cn))
        temps = (0.05,)
    elif name == "collapsed":
        # Every generated sample of a problem within 1e-4 of one point: the
        # distances among them sit at the 1e-8 floor; the result must stay finite.
        B, Cg, Cp, Cn, S = 2, 16, 16, 4, 3
        center = normal(B, 1, S)
        gen = (center + 1e-4 * normal(B, Cg, S)).float()
        pos, neg = normal(B, Cp, S), normal(B, Cn, S)
        w = (torch.ones(B, Cg), torch.ones(B, Cp), torch.ones(B, Cn))
    elif name == "large_scale":
        # Coordinates of order 1e3: the normalizations make the field scale-free.
        B, Cg, Cp, Cn, S = 2, 16, 24, 8, 16
        gen, pos, neg = normal(B, Cg, S, scale=1e3), normal(B, Cp, S, scale=1e3, shift=300.0), \
            normal(B, Cn, S, scale=1e3)
        w = (torch.ones(B, Cg), torch.ones(B, Cp), weights(B, Cn))
    else:
        raise ValueError(name)
    return dict(gen=gen, pos=pos, neg=neg, weight_gen=w[0].float(), weight_pos=w[1].float(),
                weight_neg=w[2].float()), np.asarray(temps, dtype=np.float32)


CASES = ("toy2d", "cfg_weighted", "weighted_all", "single_temp_wide", "collapsed", "large_scale")


def expected(inputs, temperatures):
    """The reference outputs in float64 from float32 inputs (temperatures as stored)."""
    t = {k: torch.as_tensor(np.asarray(v), dtype=torch.float64) for k, v in inputs.items()}
    goal, V, m_tau, scale, _ = drift_field(
        t["gen"], t["pos"], t["neg"], t["weight_gen"], t["weight_pos"], t["weight_neg"],
        # A float32 temperature means its shortest decimal (0.02f -> 0.02), as drift reads it.
        temperatures=[float(str(x)) for x in np.asarray(temperatures, dtype=np.float32)],
        exact_distances=True)
    # Loss per problem: mean over samples and dims of (gen/s - goal)^2 = mean V^2.
    loss = (V * V).mean(dim=(1, 2))
    return dict(goal=goal, V=V, loss=loss, scale=scale, loss_per_temperature=m_tau)


def write_case(path, inputs, temperatures):
    out = expected(inputs, temperatures)
    with h5py.File(path + ".tmp", "w") as f:
        for k, v in inputs.items():
            f.create_dataset(k, data=np.asarray(v, dtype=np.float32))
        f.attrs.create("temperatures", np.asarray(temperatures, dtype=np.float32))
        grp = f.create_group("expected")
        for k, v in out.items():
            grp.create_dataset(k, data=v.numpy().astype(np.float64))
    os.replace(path + ".tmp", path)


def rel_err(a, b):
    a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
    d = np.linalg.norm(b)
    return np.linalg.norm(a - b) / d if d > 0 else np.linalg.norm(a - b)


def check_dir(directory, tol=1e-9):
    files = sorted(glob.glob(os.path.join(directory, "*.h5")))
    if not files:
        print(f"make_golden: {directory}: no *.h5 case", file=sys.stderr)
        return 1
    bad = 0
    for path in files:
        with h5py.File(path, "r") as f:
            inputs = {k: f[k][()] for k in
                      ("gen", "pos", "neg", "weight_gen", "weight_pos", "weight_neg")}
            temps = f.attrs["temperatures"]
            ref = {k: f["expected/" + k][()] for k in f["expected"]}
        out = expected(inputs, temps)
        worst = 0.0
        for k, v in out.items():
            e = rel_err(v.numpy(), ref[k])
            worst = max(worst, e)
            if not e <= tol:
                print(f"make_golden: {path}: expected/{k} differs from the reference by {e:.3g} "
                      f"(relative, tolerance {tol:g})", file=sys.stderr)
                bad += 1
        print(f"{os.path.basename(path)}: max relative error {worst:.3g}")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", nargs="?", help="where to write the cases")
    ap.add_argument("--check", metavar="DIR", help="recompute the cases in DIR and compare")
    ap.add_argument("--seed", type=int, default=20260206)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.check:
        sys.exit(check_dir(a.check))
    if not a.out_dir:
        ap.error("give OUT_DIR or --check DIR")
    os.makedirs(a.out_dir, exist_ok=True)
    for i, name in enumerate(CASES):
        g = torch.Generator().manual_seed(a.seed + i)
        inputs, temps = case_inputs(name, g)
        write_case(os.path.join(a.out_dir, name + ".h5"), inputs, temps)
        print(f"wrote {os.path.join(a.out_dir, name + '.h5')}")


if __name__ == "__main__":
    main()
