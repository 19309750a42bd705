#!/usr/bin/env bash
# The golden cases in tests/golden are what their recorded command writes, and
# the PyTorch reference (bench/py/drift_field.py) reproduces them: the script
# run again writes the same inputs, and expected outputs within 1e-12; its
# --check recomputes every case, and fails on a case whose expected output was
# altered. Where DRIFT_EXTRA_GOLDEN_DIR names a second set of cases written by
# an independent implementation, the reference must reproduce those too.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}"
py=$DRIFT_SOURCE_DIR/.venv/bin/python
fail() { echo "FAIL: $*"; exit 1; }
if ! [ -x "$py" ] || ! "$py" -c "import torch, h5py, numpy" 2> /dev/null; then
  echo "skip: $py with torch, h5py and numpy not found (bash scripts/setup.sh creates it)"
  exit 77
fi
script=$DRIFT_SOURCE_DIR/bench/py/make_golden.py
golden=$DRIFT_SOURCE_DIR/tests/golden
tmp=$(mktemp -d /tmp/drift-golden-ref-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

"$py" "$script" --check "$golden" || fail "the reference does not reproduce tests/golden"

# Rewritten by the recorded command: the same cases, the same inputs bit for bit.
"$py" "$script" "$tmp/new" > /dev/null || fail "make_golden.py could not write the cases"
"$py" - "$golden" "$tmp/new" << 'PY' || fail "tests/golden is not what bench/py/make_golden.py writes"
import glob, os, sys
import h5py, numpy as np
old_dir, new_dir = sys.argv[1], sys.argv[2]
names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(old_dir, "*.h5")))
assert names == sorted(os.path.basename(p) for p in glob.glob(os.path.join(new_dir, "*.h5"))), names
for n in names:
    a, b = h5py.File(os.path.join(old_dir, n), "r"), h5py.File(os.path.join(new_dir, n), "r")
    assert np.array_equal(a.attrs["temperatures"], b.attrs["temperatures"]), n
    for k in ("gen", "pos", "neg", "weight_gen", "weight_pos", "weight_neg"):
        assert a[k].dtype == np.float32 and np.array_equal(a[k][()], b[k][()]), (n, k)
    for k in b["expected"]:
        x, y = a["expected/" + k][()], b["expected/" + k][()]
        e = np.linalg.norm(np.ravel(x - y)) / max(np.linalg.norm(np.ravel(y)), 1e-300)
        assert e < 1e-12, (n, k, e)
print(f"{len(names)} cases rewritten identically")
PY

# --check must notice an altered case.
cp "$golden"/*.h5 "$tmp/new/"
"$py" - "$tmp/new/toy2d.h5" << 'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f["expected/V"][0, 0, 0] += 1e-6
PY
if "$py" "$script" --check "$tmp/new" > "$tmp/check.txt" 2>&1; then
  cat "$tmp/check.txt"; fail "--check accepted a case whose expected V was altered"
fi
grep -q "toy2d.h5: expected/V differs" "$tmp/check.txt" || { cat "$tmp/check.txt"; fail "--check did not name the altered case"; }

if [ -n "${DRIFT_EXTRA_GOLDEN_DIR:-}" ]; then
  "$py" "$script" --check "$DRIFT_EXTRA_GOLDEN_DIR" \
    || fail "the reference does not reproduce the second reference's cases in $DRIFT_EXTRA_GOLDEN_DIR"
else
  echo "note: DRIFT_EXTRA_GOLDEN_DIR unset: no second reference checked"
fi
echo "cli.golden_reference: OK"
