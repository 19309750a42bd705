#!/usr/bin/env bash
# Builds drift with AddressSanitizer + UndefinedBehaviorSanitizer in
# build-sanitize/ (RelWithDebInfo, no CUDA kernel) and runs the test suite
# under them. Any report fails the test that triggered it (-fno-sanitize-recover).
#
#   bash scripts/sanitize.sh                 # build + every test
#   bash scripts/sanitize.sh -R 'Golden|H5'  # build + the tests ctest -R selects
#   bash scripts/sanitize.sh --ci-subset     # what CI runs (scripts/test.sh): below
#
# --ci-subset builds only what the readers, the checkpoints and the sweep's
# fault handling need (the framework, the plugins, drift-run and the test
# programs named below) and runs those programs, the checkpoint test against
# the real binaries and the short fuzz runs. The whole suite under the
# sanitizers takes about an hour of a 2-core machine from nothing, too much for
# CI beside the Release suite; its last result is in
# docs/results/reliability.md, with its commit.
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
subset=0
if [ "${1:-}" = "--ci-subset" ]; then
  subset=1
  shift
fi
DRIFT_SETUP_NO_BUILD=1 bash scripts/setup.sh   # packages and .venv only
# The full run: RelWithDebInfo (line numbers in reports). The CI subset: -O1
# without debug information, which compiles 2-5x faster (reports name the
# functions, not the lines); its own directory.
if [ "$subset" = 1 ]; then
  BUILD_DIR=${DRIFT_SANITIZE_BUILD_DIR:-build-sanitize-ci}
  flags=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1 -DCMAKE_C_FLAGS_RELEASE=-O1)
else
  BUILD_DIR=${DRIFT_SANITIZE_BUILD_DIR:-build-sanitize}
  flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja "${flags[@]}" \
    -DDRIFT_SANITIZE=address,undefined -DDRIFT_WITH_CUDA=OFF \
    -DDRIFT_PYTHON="$PWD/.venv/bin/python"
fi
# The test programs of the subset: HDF5 layer, experiment files, datasets and
# image files, the feature cache, training and checkpoints, and the robot-control
# environments (hand-written geometry and contact code) and policy training.
subset_tests=(test_h5 test_config test_datasets test_image_datasets test_feature_cache test_train test_checkpoint
              test_policy_envs test_policy_training)
if [ "$subset" = 1 ]; then
  mapfile -t plugins < <(ninja -C "$BUILD_DIR" -t targets all | grep -oE '^lib/drift/plugins/[^:]*\.so' | sort -u)
  mapfile -t fuzz < <(ninja -C "$BUILD_DIR" -t targets all | grep -oE '^bin/fuzz_[a-z_0-9]+' | sort -u || true)
  t0=$SECONDS
  cmake --build "$BUILD_DIR" -j "$(nproc)" --target "${plugins[@]}" "${fuzz[@]}" "${subset_tests[@]}" \
    drift-run drift_test_plugins
  echo "[sanitize] built the subset in $((SECONDS - t0)) s"
else
  cmake --build "$BUILD_DIR" -j "$(nproc)"
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-protect_shadow_gap=0:detect_container_overflow=0:detect_leaks=0:abort_on_error=1}
export DRIFT_SANITIZED=1  # tests that time things skip themselves
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$BUILD_DIR"
if [ "$subset" = 1 ]; then
  t0=$SECONDS
  export DRIFT_NUM_THREADS=2
  for t in "${subset_tests[@]}"; do
    "bin/$t" --gtest_brief=1 > "$t.sanitize.log" 2>&1 || { cat "$t.sanitize.log"; echo "[sanitize] $t failed"; exit 1; }
    echo "[sanitize] $t: $(grep -E '^\[  PASSED  \]' "$t.sanitize.log")"
  done
  ctest --output-on-failure --timeout 2400 -R '^(cli\.checkpoint|fuzz_.*_(short|guarded))$' "$@"
  echo "[sanitize] subset ran in $((SECONDS - t0)) s"
else
  ctest --output-on-failure -j "$(nproc)" --timeout 2400 "$@"
fi
