#!/usr/bin/env bash
# The ONE script of a GPU session (docs/guide/running.md §8). Runs ON the device machine, from the
# repository root, with gpu-bundle/ carried (made on the CPU machine by
# scripts/gpu/prepare.sh):
#
#   run(command="bash scripts/gpu/device_check.sh", carry=["gpu-bundle"], timeout_s=600)
#
# Steps, each logged with the seconds elapsed; the first failure stops it (exit != 0):
#   1. machine: GPU, OS, compilers, PyTorch; fails early without a GPU or CUDA torch
#   2. configure + build (Release, DRIFT_WITH_CUDA=ON, sm_90 + compute_80 PTX)
#      against the machine's own PyTorch 2.11 LibTorch and the bundle
#   3. the CUDA tests (test_cuda_field, test_cuda_train, test_checkpoint): must pass and not skip
#   4. the benchmark: bench_cuda_field + bench/py/cuda_field_report.py (PyTorch
#      eager and torch.compile of the same math, roofline fractions)
#   5. the whole suite (ctest) with CUDA enabled, in the time that is left
# Output: $OUT (the device tool brings it back; ./gpu-out elsewhere):
# device_check.log (everything, test output included), build.log (configure +
# build), bench_cuda_field.json, cuda_field_report.{md,json}, ctest.log,
# ctest_last.log: 7 files (the tool brings back 8 at most). The last lines
# printed are the summary.
#
# Environment: DRIFT_PYTHON (python with CUDA torch; default python3), DRIFT_CHECK_BUDGET_S (default 570: total seconds the script may
# use), DRIFT_CHECK_JOBS (build jobs, default: all cores), DRIFT_CHECK_SKIP_SUITE=1.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
out=${OUT:-$root/gpu-out}
mkdir -p "$out"
log=$out/device_check.log
exec > >(tee -a "$log") 2>&1
t0=$SECONDS
budget=${DRIFT_CHECK_BUDGET_S:-570}
jobs=${DRIFT_CHECK_JOBS:-$(nproc)}
bundle=$root/gpu-bundle
libdir=$bundle/usr/lib/x86_64-linux-gnu
build=$root/build-gpu
summary=()

step() { echo; echo "=== [$((SECONDS - t0)) s] $*"; }
die() { echo "!!! device_check FAILED at [$((SECONDS - t0)) s]: $*"; print_summary; exit 1; }
left() { echo $((budget - (SECONDS - t0))); }
print_summary() {
  echo; echo "=== summary ($((SECONDS - t0)) s)"
  for s in "${summary[@]}"; do echo "  $s"; done
  [ -f "$out/cuda_field_report.md" ] && cat "$out/cuda_field_report.md"
  return 0
}

# ---------------------------------------------------------------- 1. machine
step "1. machine"
[ -d "$bundle/usr/include/absl" ] || die "$bundle is missing: run scripts/gpu/prepare.sh on the CPU machine and carry gpu-bundle"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv || true
grep -E '^(PRETTY_NAME)=' /etc/os-release || true
py=${DRIFT_PYTHON:-$(command -v python3)} || die "no python3 (or set DRIFT_PYTHON)"
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
[ -x "$nvcc" ] || die "no nvcc (not on PATH, not /usr/local/cuda/bin/nvcc)"
"$nvcc" --version | tail -2
g++ --version | head -1 || die "no g++"
cmake --version | head -1 || die "no cmake"
ninja --version || die "no ninja"
"$py" - <<'EOF' || die "python3's torch sees no CUDA device"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "device", torch.cuda.get_device_name(0))
assert torch.cuda.is_available()
EOF
summary+=("machine: $("$py" -c 'import torch;print(torch.cuda.get_device_name(0))'), torch $("$py" -c 'import torch;print(torch.__version__)'), nvcc $("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), $(grep -oP '(?<=PRETTY_NAME=").*(?=")' /etc/os-release || echo '?')")

# ---------------------------------------------------------------- 2. build
step "2. configure + build in $build ($jobs jobs)"
# Old Debian headers with a newer g++ (Abseil 2022 misses <cstdint> with GCC 13);
# binaries and plugins get an RPATH (transitive: DT_RPATH) into the bundle only.
export CXXFLAGS="-include cstdint ${CXXFLAGS:-}"
export LDFLAGS="-Wl,--disable-new-dtags -Wl,-rpath,$libdir ${LDFLAGS:-}"
export CMAKE_PREFIX_PATH="$bundle/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"  # also for tests that configure
export CUDACXX=$nvcc
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DDRIFT_PYTHON="$py" -DDRIFT_WITH_CUDA=ON -DDRIFT_CUDA_ARCHITECTURES="90-real;80-virtual" \
  -DDRIFT_EXTRA_GOLDEN_DIR="$([ -d "$bundle/golden2" ] && echo "$bundle/golden2")" \
  -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
  -DHDF5_ROOT="$libdir/hdf5/serial" -DHDF5_C_COMPILER_EXECUTABLE=/nonexistent/h5cc \
  -DHDF5_CXX_COMPILER_EXECUTABLE=/nonexistent/h5c++ > "$out/build.log" 2>&1 ||
  { tail -40 "$out/build.log"; die "cmake configure (build.log)"; }
grep -E "drift:|HDF5|Found" "$out/build.log" || true
# First what the GPU checks need: every plugin, the CUDA tests, the benchmark.
mapfile -t plugins < <(ninja -C "$build" -t targets all | grep -o '^lib/drift/plugins/[^:]*\.so' | sort -u)
first=("${plugins[@]}" test_cuda_field test_cuda_train test_checkpoint bench_cuda_field drift-run)
ninja -C "$build" -j "$jobs" "${first[@]}" >> "$out/build.log" 2>&1 ||
  { grep -E "error|FAILED" -A3 "$out/build.log" | head -60; die "build of ${first[*]} (build.log)"; }
summary+=("build of the CUDA targets: ok at $((SECONDS - t0)) s")
"$build/bin/drift-run" --list-plugins | grep -A3 "laplace" | head -8 || true

# ---------------------------------------------------------------- 3. CUDA tests
step "3. CUDA tests"
export DRIFT_NUM_THREADS=4
for t in test_cuda_field test_cuda_train test_checkpoint; do
  tlog=$build/$t.log
  "$build/bin/$t" --gtest_color=no > "$tlog" 2>&1 || { cat "$tlog"; die "$t"; }
  cat "$tlog"
  if grep -q "no CUDA device" "$tlog"; then
    die "$t skipped GPU tests: 'no CUDA device' (on a GPU machine!)"
  fi
  summary+=("$t: $(grep -E '^\[  PASSED  \]' "$tlog" | head -1), $(grep -cE '^\[  SKIPPED \]' "$tlog" || true) skipped (the CPU-only ones)")
done

# ---------------------------------------------------------------- 4. benchmark
step "4. benchmark (bench_cuda_field, eager, torch.compile)"
"$build/bin/bench_cuda_field" --benchmark_min_time=0.5s --benchmark_format=console \
  --benchmark_out="$out/bench_cuda_field.json" --benchmark_out_format=json ||
  die "bench_cuda_field"
compile_flag=()
[ "$(left)" -gt 300 ] || compile_flag=(--no-compile)  # torch.compile takes a minute or two
PYTHONUNBUFFERED=1 "$py" bench/py/cuda_field_report.py --cpp-json "$out/bench_cuda_field.json" \
  --json "$out/cuda_field_report.json" "${compile_flag[@]}" | tee "$out/cuda_field_report.md" ||
  die "cuda_field_report.py"
summary+=("benchmark: cuda_field_report.md ${compile_flag[*]:-(with torch.compile)}")

# ---------------------------------------------------------------- 5. the suite
if [ "${DRIFT_CHECK_SKIP_SUITE:-0}" = 1 ]; then
  summary+=("suite: skipped (DRIFT_CHECK_SKIP_SUITE=1)")
elif [ "$(left)" -lt 90 ]; then
  summary+=("suite: NOT RUN, only $(left) s left of $budget")
else
  step "5. build the rest + the whole suite ($(left) s left)"
  if timeout $(( $(left) - 60 )) ninja -C "$build" -j "$jobs" >> "$out/build.log" 2>&1; then
    set +e
    timeout $(( $(left) - 10 )) ctest --test-dir "$build" -j "$jobs" --output-on-failure \
      --timeout 240 > "$out/ctest.log" 2>&1
    rc=$?
    set -e
    tail -c 15000000 "$build/Testing/Temporary/LastTest.log" > "$out/ctest_last.log" 2>/dev/null || true
    grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)|Not Run|\(SEGFAULT\)|\*\*\*" "$out/ctest.log" | tail -40
    summary+=("suite: $(grep -E 'tests passed' "$out/ctest.log" || echo "ctest exit $rc (timeout?)")")
    [ "$rc" = 0 ] || { print_summary; echo "!!! device_check: the suite failed (ctest.log)"; exit 1; }
  else
    summary+=("suite: NOT RUN, build of the remaining targets failed or ran out of time (build.log)")
    tail -30 "$out/build.log"
  fi
fi
print_summary
echo "device_check: done"
