#!/usr/bin/env bash
# Installs drift to a temporary prefix, builds examples/out_of_tree_plugin against
# the installed CMake package, and runs the installed drift-field with its kernel.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
CMAKE=${CMAKE_COMMAND:-cmake}
tmp=$(mktemp -d /tmp/drift-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

"$CMAKE" --install "$DRIFT_BINARY_DIR" --prefix "$prefix" > "$tmp/install.log"
for f in bin/drift-run bin/drift-field include/drift/sdk.hpp lib/cmake/drift/driftConfig.cmake \
         lib/drift/plugins/kernel_laplace.so lib/drift/plugins/normalizer_feature_drift.so \
         bin/drift-report share/drift/drift_report.py; do
  [ -e "$prefix/$f" ] || { echo "FAIL: $f not installed"; exit 1; }
done

# The installed drift-run finds the installed plugins with no configuration.
unset DRIFT_PLUGIN_PATH
"$prefix/bin/drift-run" --list-plugins > "$tmp/list.txt"
grep -q "^kernel *laplace *$prefix/lib/drift/plugins/kernel_laplace.so" "$tmp/list.txt" \
  || { echo "FAIL: installed drift-run does not list the installed laplace kernel"; cat "$tmp/list.txt"; exit 1; }

# Build the example plugin against the installed package (its own CMake project).
"$CMAKE" -S "$DRIFT_SOURCE_DIR/examples/out_of_tree_plugin" -B "$tmp/plugin" -G Ninja \
  -DCMAKE_PREFIX_PATH="$prefix" ${DRIFT_TORCH_DIR:+-DTorch_DIR="$DRIFT_TORCH_DIR"} \
  -DCMAKE_BUILD_TYPE=Release > "$tmp/configure.log" 2>&1 || { cat "$tmp/configure.log"; exit 1; }
"$CMAKE" --build "$tmp/plugin" > "$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
so=$tmp/plugin/nearest_positive.so
[ -f "$so" ] || { echo "FAIL: $so not built"; exit 1; }

export DRIFT_PLUGIN_PATH=$so
"$prefix/bin/drift-run" --list-plugins > "$tmp/list2.txt"
grep -q "^kernel *nearest_positive *$so" "$tmp/list2.txt" \
  || { echo "FAIL: plugin not listed"; cat "$tmp/list2.txt"; exit 1; }
grep -q "step .*float.*default 1.0" "$tmp/list2.txt" \
  || { echo "FAIL: parameter 'step' not listed"; cat "$tmp/list2.txt"; exit 1; }

# Run the installed drift-field with the out-of-tree kernel on the bundled example.
"$prefix/bin/drift-field" "$DRIFT_SOURCE_DIR/examples/field/two_gaussians.h5" "$tmp/out.h5" \
  --kernel nearest_positive > "$tmp/field.txt" 2>&1 || { cat "$tmp/field.txt"; exit 1; }
[ -s "$tmp/out.h5" ] || { echo "FAIL: drift-field wrote no output"; exit 1; }
# With step = 1 every goal is the nearest positive (in normalized coordinates).
if command -v h5dump >/dev/null; then
  h5dump -d /loss_per_temperature "$tmp/out.h5" > "$tmp/dump.txt"
  grep -q "DATASPACE" "$tmp/dump.txt" || { echo "FAIL: no loss_per_temperature in output"; exit 1; }
fi
echo "PASS: installed drift + out-of-tree plugin nearest_positive"
