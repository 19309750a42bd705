#!/usr/bin/env bash
# drift-demos end to end: it records expert demonstrations of both tasks and
# summarises them (every episode a success, both modes present); the same seed
# writes the same demonstrations; h5py reads the layout docs/guide/policy.md
# gives; bad input fails with ONE line naming what is wrong, exit 1 (2 for
# usage), and leaves an existing OUT.h5 as it was.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
tool=$DRIFT_BINARY_DIR/bin/drift-demos
[ -x "$tool" ] || { echo "FAIL: $tool not built"; exit 1; }
tmp=$(mktemp -d /tmp/drift-demos-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

for task in obstacle two_goals; do
  "$tool" $task 40 "$tmp/$task.h5" --seed 3 > "$tmp/$task.txt" || fail "$task: recording failed"
  grep -q "40 episodes of $task, .* success 100.0%; modes: " "$tmp/$task.txt" || { cat "$tmp/$task.txt"; fail "$task: summary"; }
  # Both modes appear among 40 episodes (each 50%: all on one side has probability 2e-12).
  n_modes=$(grep -oE '[0-9.]+%' "$tmp/$task.txt" | tail -n +2 | wc -l)
  [ "$n_modes" = 2 ] || { cat "$tmp/$task.txt"; fail "$task: not two modes"; }
  "$tool" --summary "$tmp/$task.h5" > "$tmp/$task.sum" || fail "$task: --summary failed"
  [ "$(cut -d: -f2- "$tmp/$task.sum")" = "$(cut -d: -f2- "$tmp/$task.txt")" ] || fail "$task: --summary differs from the recording's summary"
done
"$tool" obstacle 40 "$tmp/again.h5" --seed 3 > /dev/null

py=$DRIFT_SOURCE_DIR/.venv/bin/python
if [ -x "$py" ] && "$py" -c "import h5py" 2> /dev/null; then
  "$py" - "$tmp/two_goals.h5" << 'PY' || fail "h5py does not read the documented layout"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    d = f["data"]
    assert d.attrs["env"] == "two_goals" and d.attrs["obs_dim"] == 8 and d.attrs["action_dim"] == 2
    assert len([k for k in d if k.startswith("demo_")]) == 40
    g = d["demo_0"]
    assert g["obs"].shape[1] == 8 and g["actions"].shape[1] == 2 and g["obs"].shape[0] == g["actions"].shape[0]
    assert g.attrs["success"] == 1 and g.attrs["mode"] in (0, 1)
PY
  "$py" - "$tmp/obstacle.h5" "$tmp/again.h5" << 'PY' || fail "the same seed wrote different demonstrations"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    for k in a["data"]:
        for part in ("obs", "actions"):
            assert np.array_equal(a["data"][k][part][()], b["data"][k][part][()]), (k, part)
PY
fi

# Bad input: one line, exit status, OUT.h5 untouched.
cp "$tmp/obstacle.h5" "$tmp/keep.h5"
expect() {  # expect STATUS TEXT ARGS...
  local want=$1 text=$2; shift 2
  set +e; "$tool" "$@" > "$tmp/out.txt" 2> "$tmp/err.txt"; local rc=$?; set -e
  [ "$rc" = "$want" ] || { cat "$tmp/err.txt"; fail "$*: exit $rc, expected $want"; }
  grep -qF -- "$text" "$tmp/err.txt" || { cat "$tmp/err.txt"; fail "$*: error lacks '$text'"; }
  [ "$want" = 2 ] || [ "$(wc -l < "$tmp/err.txt")" = 1 ] || { cat "$tmp/err.txt"; fail "$*: error is not one line"; }
}
expect 1 "drift-demos: no task 'pusht' (tasks: obstacle, two_goals)" pusht 3 "$tmp/keep.h5"
expect 2 "N: 'x' is not a number of episodes" obstacle x "$tmp/keep.h5"
expect 2 "--seed: '-1' is not a non-negative integer" obstacle 3 "$tmp/keep.h5" --seed -1
expect 1 "$tmp/nodir/x.h5: cannot write: directory $tmp/nodir does not exist" obstacle 3 "$tmp/nodir/x.h5"
printf 'not hdf5' > "$tmp/text.h5"
expect 1 "$tmp/text.h5: not an HDF5 file" --summary "$tmp/text.h5"
"$DRIFT_BINARY_DIR/bin/drift-field" "$DRIFT_SOURCE_DIR/examples/field/two_gaussians.h5" "$tmp/field.h5" > /dev/null
expect 1 "$tmp/field.h5: no group '/data'" --summary "$tmp/field.h5"
cmp -s "$tmp/obstacle.h5" "$tmp/keep.h5" || fail "a failed run changed an existing OUT.h5"
ls "$tmp" | grep -q 'tmp-' && fail "a temporary file was left behind"
echo "drift-demos: recording, summary, layout and errors as documented"
