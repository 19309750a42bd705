#!/usr/bin/env bash
# README command (a): set up and build (scripts/setup.sh), then run the default
# experiment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${DRIFT_BUILD_DIR:-build}
EXPERIMENT=${1:-experiments/example.toml}
echo "[run] plugins:"; "$BUILD_DIR/bin/drift-run" --list-plugins | grep -E '^[a-z]'
echo "[run] drift field of the bundled example (examples/field/two_gaussians.h5):"
mkdir -p results
"$BUILD_DIR/bin/drift-field" examples/field/two_gaussians.h5 results/two_gaussians_field.h5
echo "[run] $EXPERIMENT:"
"$BUILD_DIR/bin/drift-run" --dry-run "$EXPERIMENT"
