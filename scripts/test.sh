#!/usr/bin/env bash
# README command (b): set up and build (scripts/setup.sh), then run the whole
# test suite through CTest, then a subset of it under AddressSanitizer + UBSan.
# This is what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${DRIFT_BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" --timeout 1200
cd - > /dev/null
# Then the readers, the checkpoints and the sweep's fault handling once more,
# built with AddressSanitizer + UBSan (scripts/sanitize.sh --ci-subset; the
# whole suite under them is scripts/sanitize.sh). DRIFT_TEST_NO_SANITIZE=1 skips it.
if [ "${DRIFT_TEST_NO_SANITIZE:-0}" != 1 ]; then
  bash scripts/sanitize.sh --ci-subset
fi
