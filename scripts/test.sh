#!/usr/bin/env bash
# README command (b): set up and build (scripts/setup.sh), then run the whole
# test suite through CTest. This is what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${DRIFT_BUILD_DIR:-build}
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" --timeout 1200
