"""The drift field workloads of bench/bench_drift_field.cpp in PyTorch eager and
torch.compile (CPU, float32, temperatures 0.02/0.05/0.2), next to the C++
results (Google Benchmark JSON) of the same run. Prints one table.

    python bench/py/compare_drift_field.py --threads N --cpp-json FILE [--reps R]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from drift_field import drift_field  # noqa: E402

WORKLOADS = {  # name: (B, Cg, Cp, Cn, S)
    "W1": (1, 256, 256, 0, 2),
    "W2": (256, 64, 64, 16, 128),
    "W3": (16, 64, 64, 16, 1024),
}


def inputs(B, Cg, Cp, Cn, S):
    torch.manual_seed(0)
    return (torch.randn(B, Cg, S), torch.randn(B, Cp, S) + 0.5, torch.randn(B, Cn, S) - 0.5)


def time_ms(fn, args, reps, min_s=1.0):
    for _ in range(3):
        fn(*args)
    samples = []
    t_end = time.perf_counter() + min_s
    while len(samples) < reps or time.perf_counter() < t_end:
        t = time.perf_counter()
        fn(*args)
        samples.append((time.perf_counter() - t) * 1e3)
        if len(samples) >= 50 * reps:
            break
    return statistics.median(samples)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--cpp-json", required=True)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    cpp = {}
    with open(a.cpp_json) as f:
        report = json.load(f)
        ctx = report.get("context", {})
        isa, cpu = ctx.get("fused_isa", "?"), ctx.get("cpu_model", "?")
        for b in report["benchmarks"]:
            if b.get("run_type", "iteration") != "iteration":
                continue
            _, w, impl = b["name"].split("/")[:3]
            assert b["time_unit"] == "ms"
            cpp[(w, impl)] = b["real_time"]

    def field(g, p, n):
        return drift_field(g, p, n)

    compiled = None if a.no_compile else torch.compile(field, dynamic=False)
    rows = []
    for w, shape in WORKLOADS.items():
        args = inputs(*shape)
        with torch.no_grad():
            eager = time_ms(field, args, a.reps)
            comp = time_ms(compiled, args, a.reps) if compiled else float("nan")
        rows.append((w, shape, eager, comp, cpp.get((w, "plain")), cpp.get((w, "fused")),
                     cpp.get((w, "gemm_floor"))))

    print(f"threads={a.threads}  torch {torch.__version__}  (times: ms per call, median)")
    print(f"CPU: {cpu}; fused kernel copy: {isa} (DRIFT_FUSED_ISA=v4|v3|default forces one)")
    hdr = ("workload", "[B,Cg,Cp,Cn,S]", "eager", "compile", "plain", f"fused ({isa})", "gemm",
           "eager/fused", "compile/fused", "fused/gemm")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for w, shape, eager, comp, plain, fused, gemm in rows:
        print(f"| {w} | {list(shape)} | {eager:.3f} | {comp:.3f} | {plain:.3f} | {fused:.3f} | "
              f"{gemm:.3f} | {eager / fused:.1f}x | {comp / fused:.2f}x | {fused / gemm:.2f}x |")


if __name__ == "__main__":
    main()
