#!/usr/bin/env python3
"""Writes two_gaussians.h5, the bundled drift-field example (golden layout, see
../../tests/golden/README.md): one problem (B = 1) in 2-D where the data p is
a mixture of two Gaussians (positives) and the generated samples q sit in one
Gaussian between them. Optional datasets (neg, weight_*) are left out: they
default to "no extra negatives" and "all weights 1".

    .venv/bin/python examples/field/make_example.py [OUT.h5]

Deterministic (fixed seed); needs numpy and h5py.
"""
import sys

import h5py
import numpy as np


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "two_gaussians.h5"
    rng = np.random.default_rng(2026)
    n_gen, n_pos = 64, 64
    # p: two modes at (-2, 0) and (+2, 0), std 0.5, equal weight.
    centers = np.where(rng.random(n_pos) < 0.5, -2.0, 2.0)
    pos = np.stack([centers, np.zeros(n_pos)], axis=1) + 0.5 * rng.standard_normal((n_pos, 2))
    # q: one Gaussian between the modes, std 0.5.
    gen = np.array([0.0, 1.0]) + 0.5 * rng.standard_normal((n_gen, 2))
    with h5py.File(out, "w") as f:
        f.create_dataset("gen", data=gen[None].astype(np.float32))  # [B=1, Cg=64, S=2]
        f.create_dataset("pos", data=pos[None].astype(np.float32))  # [B=1, Cp=64, S=2]
        f.attrs["temperatures"] = np.array([0.02, 0.05, 0.2], dtype=np.float32)
    print(f"wrote {out}: gen [1, {n_gen}, 2], pos [1, {n_pos}, 2], temperatures 0.02, 0.05, 0.2")


if __name__ == "__main__":
    main()
