#!/usr/bin/env bash
# drift-rollout end to end, with hand-written TorchScript policies
# (tests/cli/policies/make_policies.py): flying straight up crashes into the
# obstacle every time; flying round it on the left succeeds every time and in
# the left mode, with the same result for any chunking; the paths file holds
# every episode; a policy of the wrong shape, a bad option or a missing file
# is one line. Then the regression, flow-matching and drifting policies
# (bench/py/policy_bc.py, policy_diffusion.py, policy_drift.py) train briefly on recorded demonstrations, their policies
# run, and bench/py/plot_rollouts.py draws the paths.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
tool=$DRIFT_BINARY_DIR/bin/drift-rollout
[ -x "$tool" ] || { echo "FAIL: $tool not built"; exit 1; }
py=$DRIFT_SOURCE_DIR/.venv/bin/python
if ! [ -x "$py" ] || ! "$py" -c "import torch, h5py" 2> /dev/null; then
  echo "skip: $py with torch and h5py not found (bash scripts/setup.sh creates it)"
  exit 77
fi
tmp=$(mktemp -d /tmp/drift-rollout-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export DRIFT_NUM_THREADS=1 OMP_NUM_THREADS=1

"$py" "$DRIFT_SOURCE_DIR/tests/cli/policies/make_policies.py" "$tmp"
"$tool" obstacle "$tmp/up.pt" --episodes 10 > "$tmp/up.txt" || fail "up: rollout failed"
grep -q "success 0.0%; modes: left 0.0%, right 0.0%, undecided 100.0%" "$tmp/up.txt" || { cat "$tmp/up.txt"; fail "straight up did not crash every time"; }
for chunk in "--pred-horizon 16 --action-horizon 8" "--pred-horizon 1 --action-horizon 1" "--pred-horizon 4 --action-horizon 4 --obs-horizon 1"; do
  # shellcheck disable=SC2086
  "$tool" obstacle "$tmp/left.pt" --episodes 10 $chunk --out "$tmp/left.h5" > "$tmp/left.txt" || fail "left ($chunk): rollout failed"
  grep -q "success 100.0%; modes: left 100.0%, right 0.0%, undecided 0.0%" "$tmp/left.txt" || { cat "$tmp/left.txt"; fail "round the left ($chunk) did not succeed on the left every time"; }
done
"$py" - "$tmp/left.h5" << 'PY' || fail "the paths file is not as documented"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    assert f.attrs["task"] == "obstacle" and f.attrs["success_rate"] == 1.0
    assert list(f["success"][()]) == [1] * 10 and list(f["mode"][()]) == [0] * 10
    p = f["episodes/0/positions"][()]
    assert p.shape[1] == 2 and abs(p[0, 1] + 0.8) < 1e-6 and np.hypot(p[-1, 0], p[-1, 1] - 0.8) <= 0.08 + 1e-6
    assert len(f["chunk_ms"]) >= 10 * 9  # the last run: 4 actions per call, about 38 steps
PY

expect() {  # expect STATUS TEXT ARGS...
  local want=$1 text=$2; shift 2
  set +e; "$tool" "$@" > "$tmp/out.txt" 2> "$tmp/err.txt"; local rc=$?; set -e
  [ "$rc" = "$want" ] || { cat "$tmp/err.txt"; fail "$*: exit $rc, expected $want"; }
  grep -qF -- "$text" "$tmp/err.txt" || { cat "$tmp/err.txt"; fail "$*: error lacks '$text'"; }
  [ "$want" = 2 ] || [ "$(wc -l < "$tmp/err.txt")" = 1 ] || { cat "$tmp/err.txt"; fail "$*: error is not one line"; }
}
expect 1 "the policy returned [1, 16, 1], expected [1, Tp >= 8, 2] (actions for obstacle)" obstacle "$tmp/wrong_shape.pt" --episodes 2
expect 1 "rollout: need episodes >= 1 and 1 <= action horizon (8) <= prediction horizon (4)" obstacle "$tmp/left.pt" --pred-horizon 4
expect 1 "$tmp/none.pt: cannot load as a TorchScript policy" obstacle "$tmp/none.pt"
expect 1 "no task 'pusht'" pusht "$tmp/left.pt"
expect 2 "--episodes: '0' is not a positive integer" obstacle "$tmp/left.pt" --episodes 0
expect 2 "unknown option '--steps'" obstacle "$tmp/left.pt" --steps 3

# The regression peer: trains on demonstrations and gives a policy drift-rollout runs.
"$DRIFT_BINARY_DIR/bin/drift-demos" two_goals 20 "$tmp/demos.h5" > /dev/null
"$py" "$DRIFT_SOURCE_DIR/bench/py/policy_bc.py" "$tmp/demos.h5" "$tmp/bc.pt" --cpu-seconds 2 > "$tmp/bc.txt" || { cat "$tmp/bc.txt"; fail "policy_bc.py failed"; }
"$tool" two_goals "$tmp/bc.pt" --episodes 3 > "$tmp/bc_roll.txt" || { cat "$tmp/bc_roll.txt"; fail "the regression peer's policy does not run"; }
grep -q "two_goals, 3 episodes, .* success [0-9.]*%" "$tmp/bc_roll.txt" || { cat "$tmp/bc_roll.txt"; fail "no summary for the peer"; }
# The flow-matching peer likewise (4 Euler steps here, to keep the test short).
"$py" "$DRIFT_SOURCE_DIR/bench/py/policy_diffusion.py" "$tmp/demos.h5" "$tmp/fm.pt" --cpu-seconds 2 --nfe 4 > "$tmp/fm.txt" || { cat "$tmp/fm.txt"; fail "policy_diffusion.py failed"; }
"$tool" two_goals "$tmp/fm.pt" --episodes 3 --out "$tmp/fm.h5" > "$tmp/fm_roll.txt" || { cat "$tmp/fm_roll.txt"; fail "the flow-matching peer's policy does not run"; }
# And the one-step drifting reference.
"$py" "$DRIFT_SOURCE_DIR/bench/py/policy_drift.py" "$tmp/demos.h5" "$tmp/dr.pt" --cpu-seconds 2 --batch 4 --gen 8 --k 8 > "$tmp/dr.txt" || { cat "$tmp/dr.txt"; fail "policy_drift.py failed"; }
"$tool" two_goals "$tmp/dr.pt" --episodes 3 > "$tmp/dr_roll.txt" || { cat "$tmp/dr_roll.txt"; fail "the drifting policy does not run"; }
"$py" "$DRIFT_SOURCE_DIR/bench/py/plot_rollouts.py" "$tmp/fm.png" "$tmp/fm.h5" "peer" "$tmp/left.h5" "left" || fail "plot_rollouts.py failed"
[ -s "$tmp/fm.png" ] || fail "no plot"
echo "drift-rollout: scripted policies, paths file, errors and the regression peer as documented"
