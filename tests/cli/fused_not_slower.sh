#!/usr/bin/env bash
# A speed guard, not a timing claim: for every copy of the fused CPU drift field
# this CPU can run (DRIFT_FUSED_ISA = v4, v3, default), Google Benchmark times
# fused, plain and the GEMM floor side by side in one process on W2 and W3
# (bench/bench_drift_field.cpp), and the test fails when fused is slower than
# plain, naming the copy and the CPU. (The fused copies are 2-15x faster than
# plain where measured, docs/results/benchmarks.md, so load from other tests
# does not flip the comparison; the minimum of 3 repetitions is compared.)
set -euo pipefail
: "${DRIFT_BINARY_DIR:?}"
bench=$DRIFT_BINARY_DIR/bin/bench_drift_field
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$bench" ] || fail "$bench not built"
if [ -n "${DRIFT_SANITIZED:-}" ]; then
  echo "skip: a sanitizer build (scripts/sanitize.sh): its timings say nothing about speed"
  exit 77
fi
command -v python3 > /dev/null || { echo "skip: no python3 to read the benchmark's JSON"; exit 77; }
tmp=$(mktemp -d /tmp/drift-fused-speed-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

ran=0
for isa in v4 v3 default; do
  if ! DRIFT_FUSED_ISA=$isa "$bench" --benchmark_filter='W[23]/(plain|fused|gemm_floor)' \
      --benchmark_min_time=0.05s --benchmark_repetitions=3 --benchmark_format=json \
      > "$tmp/$isa.json" 2> "$tmp/$isa.err"; then
    if grep -q "this CPU cannot run that copy" "$tmp/$isa.err"; then
      echo "note: this CPU cannot run the $isa copy; not timed"
      continue
    fi
    cat "$tmp/$isa.err"; fail "bench_drift_field with DRIFT_FUSED_ISA=$isa"
  fi
  ran=$((ran + 1))
  python3 - "$tmp/$isa.json" "$isa" << 'PY' || fail "the $isa copy of the fused field is slower than plain"
import json, sys
d = json.load(open(sys.argv[1]))
isa, cpu = sys.argv[2], d["context"].get("cpu_model", "?")
assert d["context"].get("fused_isa") == isa, (d["context"].get("fused_isa"), isa)
best = {}
for b in d["benchmarks"]:
    if b.get("run_type") != "iteration":
        continue
    _, w, impl, _ = b["run_name"].split("/")
    best[(w, impl)] = min(best.get((w, impl), float("inf")), b["real_time"])
bad = False
for w in ("W2", "W3"):
    f, p, g = best[(w, "fused")], best[(w, "plain")], best[(w, "gemm_floor")]
    print(f"{w} {isa} on {cpu}: fused {f:.1f} ms, plain {p:.1f} ms ({p / f:.1f}x), GEMM floor {g:.1f} ms ({f / g:.1f}x)")
    if not f < p:
        print(f"FAIL: {w}: the {isa} copy of the fused field ({f:.1f} ms) is slower than plain ({p:.1f} ms) on {cpu}")
        bad = True
sys.exit(1 if bad else 0)
PY
done
[ "$ran" -ge 1 ] || fail "no copy of the fused field could be timed"
echo "cli.fused_not_slower: OK ($ran copies)"
