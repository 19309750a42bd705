"""Why the plain drift field is slower than the PyTorch eager peer: the cost of
exact-difference distances (what drift computes) against torch.cdist's default
matrix-product form (what bench/py/drift_field.py uses), on the W2 and W3
shapes of bench/bench_drift_field.cpp, 1 thread, best of 5 (docs/results/benchmarks.md).

    .venv/bin/python bench/py/cdist_modes.py
"""
import time

import torch

WORKLOADS = {"W2": (256, 64, 64, 16, 128), "W3": (16, 64, 64, 16, 1024)}


def best_ms(fn, reps=5):
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def main():
    torch.set_num_threads(1)
    for name, (B, Cg, Cp, Cn, S) in WORKLOADS.items():
        g = torch.Generator().manual_seed(0)
        gen, pos, neg = (torch.randn(B, c, S, generator=g) for c in (Cg, Cp, Cn))
        Y = torch.cat([gen, neg, pos], 1)
        with torch.no_grad():
            mm = best_ms(lambda: torch.cdist(gen, Y))
            exact = best_ms(lambda: torch.cdist(gen, Y, compute_mode="donot_use_mm_for_euclid_dist"))
        print(f"{name} [B={B}, Cg={Cg}, T={Cg + Cn + Cp}, S={S}]: cdist via matrix product {mm:.1f} ms, "
              f"exact differences {exact:.1f} ms (+{exact - mm:.1f} ms)")


if __name__ == "__main__":
    main()
