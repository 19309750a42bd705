#!/usr/bin/env bash
# Training a drifting policy with drift-run: a short run on `obstacle`
# demonstrations (knn formation) logs closed-loop rollout metrics in its eval
# table (success and mode shares that add up, a latency), keeps [formation] in
# its resolved configuration, and ends better than it started; drift-report
# draws its paths; its export runs in drift-rollout; a cell killed after a
# checkpoint resumes exactly; and the mistakes a user can make in such a file
# are one line each.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
run=$DRIFT_BINARY_DIR/bin/drift-run
py=$DRIFT_SOURCE_DIR/.venv/bin/python
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$run" ] || fail "$run not built"
if ! [ -x "$py" ] || ! "$py" -c "import h5py" 2> /dev/null; then
  echo "skip: $py with h5py not found (bash scripts/setup.sh creates it)"
  exit 77
fi
tmp=$(mktemp -d /tmp/drift-policy-train-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
source "$DRIFT_SOURCE_DIR/tests/cli/lib/wait.sh"
export DRIFT_NUM_THREADS=1 OMP_NUM_THREADS=1

# write NAME [EXTRA TOML appended]
write() {
  local name=$1
  shift
  cat > "$tmp/$name.toml" << TOML
[experiment]
name = "$name"
seed = 0
output = "$tmp/$name.h5"
threads = 1

[data]
dataset = "demonstrations"
task = "obstacle"
episodes = 100

[generator]
plugin = "mlp"
width = 128

[train]
steps = 400
n_cond = 16
n_gen = 16
n_pos = 16
lr = 1e-3
warmup = 20
grad_clip = 2.0
ema = 0.95
eval_every = 200
log_every = 100

[eval]
n_samples = 32
rollouts = 50
${1:-}
TOML
}

write knn '
[formation]
plugin = "knn"'
"$run" "$tmp/knn.toml" > "$tmp/knn.txt" 2>&1 || { cat "$tmp/knn.txt"; fail "the knn policy run failed"; }
"$py" - "$tmp/knn.h5" << 'PY' || fail "the policy run's results are not as documented"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    cell = f["cells"][list(f["cells"])[0]]
    ev = cell["eval"][()]
    names = ev.dtype.names
    for col in ("success", "mode_left", "mode_right", "mode_undecided", "ms_per_call"):
        assert col in names, (col, names)
    assert list(ev["step"]) == [200, 400], ev["step"]
    shares = ev["mode_left"] + ev["mode_right"] + ev["mode_undecided"]
    assert np.allclose(shares, 1.0), shares
    assert ((ev["success"] >= 0) & (ev["success"] <= 1)).all()
    assert (ev["ms_per_call"] > 0).all()
    # It learns: from (almost) never reaching the goal at step 200 to a share of
    # episodes at step 400 (0.0 and 0.32 where this was written).
    assert ev["success"][-1] >= 0.1 and ev["success"][-1] > ev["success"][0], list(ev["success"])
    toml = cell.attrs["config_toml"]
    toml = toml.decode() if isinstance(toml, bytes) else toml
    assert '[formation]\nplugin = "knn"' in toml, toml
    assert "n_cond = 16" in toml
    r = cell["rollouts"]
    assert r.attrs["task"] == "obstacle" and r.attrs["step"] == 400
    pos, ok, mode = r["positions"][()], r["success"][()], r["mode"][()]
    assert pos.shape[0] == 50 and pos.shape[2] == 2 and ok.shape == (50,) and mode.shape == (50,)
    assert abs(ok.mean() - ev["success"][-1]) < 1e-9 and abs((mode == 0).mean() - ev["mode_left"][-1]) < 1e-9
    assert np.allclose(pos[:, 0, 1], -0.8)  # every episode starts at y = -0.8
    print("knn: success", list(ev["success"]), "left", list(ev["mode_left"]))
PY
"$DRIFT_BINARY_DIR/bin/drift-report" "$tmp/knn.h5" --out "$tmp/report" > "$tmp/report.txt" 2>&1 || { cat "$tmp/report.txt"; fail "drift-report failed on a policy run"; }
[ -s "$tmp/report/knn_rollouts.png" ] || { cat "$tmp/report.txt"; fail "drift-report drew no rollouts"; }
# The trained policy exported in drift-rollout's interface runs there too.
"$DRIFT_BINARY_DIR/bin/drift-export" "$tmp/knn.h5" --out "$tmp/knn.pt" > "$tmp/export.txt" 2>&1 || { cat "$tmp/export.txt"; fail "drift-export failed on a policy"; }
grep -qF "a policy: forward(obs, noise) -> actions" "$tmp/export.txt" || { cat "$tmp/export.txt"; fail "drift-export did not export a policy"; }
"$DRIFT_BINARY_DIR/bin/drift-rollout" obstacle "$tmp/knn.pt" --episodes 50 > "$tmp/roll.txt" 2>&1 || { cat "$tmp/roll.txt"; fail "drift-rollout cannot run the exported policy"; }
"$py" - "$tmp/knn.h5" "$tmp/roll.txt" << 'PY' || fail "the exported policy does not act like the trained one"
import re, sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    want = f["cells"][list(f["cells"])[0]]["eval"]["success"][-1]
got = float(re.search(r"success ([0-9.]+)%", open(sys.argv[2]).read()).group(1)) / 100
# The same 50 task seeds, other noise: it has learned as much (0.32 in drift-run
# where this was written; two draws of 50 episodes differ by 0.09 s.d.).
assert got >= 0.1 and abs(got - want) <= 0.25, (got, want)
print("exported policy: success", got, "in drift-rollout,", want, "in drift-run")
PY

# A policy cell killed after a periodic checkpoint resumes from it and ends
# exactly where an uninterrupted run ends (the formation's neighbour table is
# rebuilt, the data stream restored): same losses, rollouts and weights.
for name in whole killed; do
  write $name '
[formation]
plugin = "knn"'
  sed -i -e 's/^steps = 400$/steps = 600/' -e 's/^log_every = 100$/log_every = 100\ncheckpoint_every = 200/' "$tmp/$name.toml"
done
"$run" "$tmp/whole.toml" > "$tmp/whole.txt" 2>&1 || { cat "$tmp/whole.txt"; fail "the uninterrupted run failed"; }
"$run" "$tmp/killed.toml" > "$tmp/killed1.txt" 2>&1 &
pid=$!
wait_for_line "$pid" "checkpoint after step 200 written" "$tmp/killed.cells/0000.h5.stderr" ||
  { cat "$tmp/killed1.txt"; fail "drift-run ended before the policy cell wrote its checkpoint"; }
kill -9 "$(pgrep -f -- "--cell-worker $tmp/killed.toml" | head -1)" 2> /dev/null || true
wait "$pid" || true
grep -qE "cell 0 failed.*killed by signal 9" "$tmp/killed1.txt" || { cat "$tmp/killed1.txt"; fail "the policy cell was not killed after its checkpoint"; }
"$run" "$tmp/killed.toml" > "$tmp/killed2.txt" 2>&1 || { cat "$tmp/killed2.txt"; fail "the resumed policy run failed"; }
grep -qE "resuming after step (200|400)" "$tmp/killed2.txt" || { cat "$tmp/killed2.txt"; fail "the policy cell did not resume from its checkpoint"; }
"$py" - "$tmp/whole.h5" "$tmp/killed.h5" << 'PY' || fail "the resumed policy cell differs from the uninterrupted one"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r")["cells/0000"] for p in sys.argv[1:])
ea, eb = a["eval"][()], b["eval"][()]
for f in ea.dtype.names:
    if f != "ms_per_call":  # wall time
        assert np.array_equal(ea[f], eb[f]), f
for f in ("step", "loss", "grad_norm"):
    assert np.array_equal(a["train"][f], b["train"][f]), f
for name in ("rollouts/positions", "rollouts/success", "rollouts/mode"):
    assert np.array_equal(a[name][()], b[name][()], equal_nan=name.endswith("positions")), name
for k in a["generator"]:
    assert np.array_equal(a["generator"][k][()], b["generator"][k][()]), k
print("resumed policy cell: equal to the uninterrupted one")
PY

expect() {  # expect TEXT FILE: the run fails with one line naming TEXT
  local text=$1 file=$2
  set +e; "$run" "$file" > "$tmp/out.txt" 2>&1; local rc=$?; set -e
  [ "$rc" != 0 ] || { cat "$tmp/out.txt"; fail "$file: exit 0, expected a failure"; }
  grep -qF -- "$text" "$tmp/out.txt" || { cat "$tmp/out.txt"; fail "$file: output lacks '$text'"; }
}
write no_ncond
sed -i 's/^n_cond = 16$/n_cond = 0/' "$tmp/no_ncond.toml"
expect "conditions on observations: set [train] n_cond" "$tmp/no_ncond.toml"
write classes
sed -i 's/^n_cond = 16$/n_cond = 16\nn_classes = 2/' "$tmp/classes.toml"
expect "[train] n_classes = 2 but dataset 'demonstrations' has no labels" "$tmp/classes.toml"
write expert_npos '
[formation]
plugin = "expert"'
expect "formation 'expert': [train] n_pos = 16 but each observation has one expert chunk" "$tmp/expert_npos.toml"
write horizon 'action_horizon = 20'
expect "[eval] action_horizon = 20 exceeds the dataset's pred_horizon = 16" "$tmp/horizon.toml"
write typo '
[formation]
plugin = "nearest"'
set +e; "$run" --dry-run "$tmp/typo.toml" > "$tmp/out.txt" 2>&1; rc=$?; set -e
[ "$rc" != 0 ] && grep -qF "[formation] 'plugin' = \"nearest\"" "$tmp/out.txt" || { cat "$tmp/out.txt"; fail "an unknown formation is not refused by --dry-run"; }

echo "policy training: OK"
