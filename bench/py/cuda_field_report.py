"""On a CUDA GPU: the drift field workloads of
bench/bench_cuda_field.cpp (float32, temperatures 0.02/0.05/0.2) in PyTorch eager
and torch.compile of the same math (bench/py/drift_field.py) next to drift's
CUDA kernel and its plain LibTorch code (Google Benchmark JSON of the same
machine), with the machine's measured ceilings (device-to-device copy
bandwidth, float32 matrix-product rate without TF32) and the fraction of the
roofline each reaches. Prints one Markdown table; --json writes all numbers.

    python bench/py/cuda_field_report.py --cpp-json FILE [--json OUT] [--no-compile]
"""
import argparse
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from drift_field import drift_field  # noqa: E402

WORKLOADS = {  # name: (B, Cg, Cp, Cn, S), as in bench/bench_cuda_field.cpp
    "W2_1024": (1024, 64, 64, 16, 128),
    "W2": (256, 64, 64, 16, 128),
    "W3": (16, 64, 64, 16, 1024),
}
TEMPS = (0.02, 0.05, 0.2)
SETS = 4  # input sets rotated, so that small workloads are not served from L2


def flop(B, Cg, Cp, Cn, S):
    T = Cg + Cp + Cn
    return 3.0 * B * Cg * T * S + 2.0 * len(TEMPS) * B * Cg * T * S


def nbytes(B, Cg, Cp, Cn, S):
    return 4.0 * (B * (Cg + Cp + Cn) * S + 2.0 * B * Cg * S)


def time_ms(fn, sets, reps=30, calls=10):
    """Median over reps of (time of `calls` calls) / calls, CUDA events."""
    for i in range(3):
        fn(*sets[i % len(sets)])
    torch.cuda.synchronize()
    samples = []
    for r in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for c in range(calls):
            fn(*sets[(r * calls + c) % len(sets)])
        b.record()
        b.synchronize()
        samples.append(a.elapsed_time(b) / calls)
    return statistics.median(samples)


def ceilings():
    torch.backends.cuda.matmul.allow_tf32 = False
    x = torch.randn(256 * 1024 * 1024, device="cuda")  # 1 GiB
    y = torch.empty_like(x)
    ms = time_ms(lambda a, b: b.copy_(a), [(x, y)], reps=10, calls=5)
    bw = 2 * x.numel() * 4 / (ms * 1e-3)
    del x, y
    n = 8192
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    ms = time_ms(lambda p, q: p @ q, [(a, b)], reps=5, calls=3)
    fl = 2.0 * n ** 3 / (ms * 1e-3)
    return bw, fl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpp-json", required=True)
    ap.add_argument("--json")
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("cuda_field_report: no CUDA device: nothing measured")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.cuda.get_device_name(0)

    cpp = {}
    with open(a.cpp_json) as f:
        for b in json.load(f)["benchmarks"]:
            if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
                continue
            _, w, impl = b["name"].split("/")[:3]
            assert b["time_unit"] == "ms", b["time_unit"]
            cpp[(w, impl)] = b["real_time"]

    bw, fl = ceilings()
    print(f"device: {dev}; torch {torch.__version__}; measured copy bandwidth {bw / 1e12:.2f} TB/s "
          f"(read + write), float32 matmul (no TF32) {fl / 1e12:.1f} TFLOP/s")
    compiled = None if a.no_compile else torch.compile(drift_field, dynamic=False)
    rows, out = [], {"device": dev, "torch": torch.__version__, "copy_bw_Bps": bw,
                     "fp32_matmul_flops": fl, "workloads": {}}
    for name, shape in WORKLOADS.items():
        B, Cg, Cp, Cn, S = shape
        torch.manual_seed(0)
        sets = [(torch.randn(B, Cg, S, device="cuda"), torch.randn(B, Cp, S, device="cuda") + 0.5,
                 torch.randn(B, Cn, S, device="cuda") - 0.5) for _ in range(SETS)]
        with torch.no_grad():
            eager = time_ms(lambda g, p, n: drift_field(g, p, n, temperatures=TEMPS), sets)
            comp = (time_ms(lambda g, p, n: compiled(g, p, n, temperatures=TEMPS), sets)
                    if compiled else float("nan"))
        cu, pl, gf = (cpp.get((name, k), float("nan")) for k in ("cuda", "plain", "gemm_floor"))
        t_bw = nbytes(*shape) / bw * 1e3
        t_fl = flop(*shape) / fl * 1e3
        floor = max(t_bw, t_fl)
        r = {"cuda_ms": cu, "plain_ms": pl, "gemm_floor_ms": gf, "eager_ms": eager,
             "compiled_ms": comp, "bandwidth_floor_ms": t_bw, "flop_floor_ms": t_fl,
             "x_eager": eager / cu, "x_compiled": comp / cu, "roofline_fraction": floor / cu}
        out["workloads"][name] = r
        rows.append((name, shape, r))

    print()
    print(f"| workload [B, Cg, Cp, Cn, S] | drift cuda ms | drift plain (GPU) ms | eager ms | "
          f"compile ms | GEMM floor ms | x eager (goal 5) | x compile (goal 1.5) | "
          f"roofline floor ms (bytes / flop) | fraction of roofline |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, shape, r in rows:
        print(f"| {name} {list(shape)} | {r['cuda_ms']:.3f} | {r['plain_ms']:.3f} | "
              f"{r['eager_ms']:.3f} | {r['compiled_ms']:.3f} | {r['gemm_floor_ms']:.3f} | "
              f"{r['x_eager']:.1f} | {r['x_compiled']:.2f} | "
              f"{r['bandwidth_floor_ms']:.3f} / {r['flop_floor_ms']:.3f} | "
              f"{100 * r['roofline_fraction']:.0f}% |")
    print(f"\n{dev}; float32 throughout (TF32 off); each time the median over 30 runs of 10 calls "
          f"(CUDA events; drift's from Google Benchmark, manual time), {SETS} input sets rotated.")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
