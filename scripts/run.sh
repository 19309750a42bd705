#!/usr/bin/env bash
# README command (a): set up and build (scripts/setup.sh), then run the default
# experiment (a 2-D toy that finishes in a few minutes on 2 cores) and report it.
#   bash scripts/run.sh [EXPERIMENT.toml]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${DRIFT_BUILD_DIR:-build}
EXPERIMENT=${1:-experiments/start/quickstart.toml}
echo "[run] drift-run --dry-run $EXPERIMENT"
"$BUILD_DIR/bin/drift-run" --dry-run "$EXPERIMENT"
echo "[run] drift-run $EXPERIMENT"
"$BUILD_DIR/bin/drift-run" "$EXPERIMENT"
output=$("$BUILD_DIR/bin/drift-run" --dry-run "$EXPERIMENT" | sed -n 's/.*output=\([^ ]*\).*/\1/p' | head -n 1)
echo "[run] drift-report $output"
"$BUILD_DIR/bin/drift-report" "$output"
echo "[run] results: $output (HDF5, layout in schemas/results.md); plots: $(dirname "$output")/*.png"
