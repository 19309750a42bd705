#!/usr/bin/env bash
# Builds drift with AddressSanitizer + UndefinedBehaviorSanitizer in
# build-sanitize/ (RelWithDebInfo, no CUDA kernel) and runs the test suite
# under them. Any report fails the test that triggered it (-fno-sanitize-recover).
#
#   bash scripts/sanitize.sh                 # build + every test
#   bash scripts/sanitize.sh -R 'Golden|H5'  # build + the tests ctest -R selects
#
# Only drift's own code is instrumented; LibTorch, HDF5, Abseil and the rest run
# uninstrumented. Run-time options, each for a reason:
#   protect_shadow_gap=0       LibTorch's CUDA libraries are loaded (even with no
#                              GPU) and reserve address ranges ASan would protect
#   detect_container_overflow=0  std::vector annotations are wrong across the
#                              boundary with uninstrumented libraries (false reports)
#   detect_leaks=0             LibTorch and HDF5 keep process-lifetime allocations
#                              that LeakSanitizer reports as leaks
# The Python tools (drift-report, h5py in the CLI tests) are not instrumented.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${DRIFT_SANITIZE_BUILD_DIR:-build-sanitize}
DRIFT_SETUP_NO_BUILD=1 bash scripts/setup.sh   # packages and .venv only
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDRIFT_SANITIZE=address,undefined -DDRIFT_WITH_CUDA=OFF \
    -DDRIFT_PYTHON="$PWD/.venv/bin/python"
fi
cmake --build "$BUILD_DIR" -j "$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-protect_shadow_gap=0:detect_container_overflow=0:detect_leaks=0:abort_on_error=1}
export DRIFT_SANITIZED=1  # tests that time things skip themselves
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" --timeout 2400 "$@"
