#!/usr/bin/env bash
# Checkpoints and resuming (docs/guide/running.md), against the real binaries:
#  - Ctrl-C (SIGINT) to drift-run mid-cell: the cell writes its checkpoint and
#    stops, --status says "paused at step N", the same command resumes it, and
#    the results file equals an uninterrupted run's bit for bit (every dataset;
#    timings excepted);
#  - kill -9 of the cell process after a periodic checkpoint ([train]
#    checkpoint_every): the cell is recorded failed, the next run resumes it
#    from that checkpoint and ends equal to the uninterrupted run;
#  - a data-parallel cell (nproc = 2) stopped by SIGTERM: both ranks stop after
#    the same step, and the resumed cell ends equal to the uninterrupted one;
#  - a checkpoint of another configuration is refused (one line naming the
#    difference); --restart starts from step 0 and removes it;
#  - a finished cell leaves no checkpoint behind.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
py=$DRIFT_SOURCE_DIR/.venv/bin/python
run=$DRIFT_BINARY_DIR/bin/drift-run
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$run" ] || fail "$run not built"
"$py" -c "import h5py, numpy" 2>/dev/null || fail "$py lacks h5py/numpy: run scripts/setup.sh"

tmp=$(mktemp -d /tmp/drift-ckpt-XXXXXX)
bg=()
cleanup() {
  for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pkill -9 -f -- "--cell-worker $tmp/" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
source "$DRIFT_SOURCE_DIR/tests/cli/lib/wait.sh"

# $1: name, $2: extra [train] lines
write_toml() {
  cat > "$tmp/$1.toml" <<EOF
[experiment]
name = "$1"
seed = 4
output = "$tmp/results/$1.h5"
device = "cpu"
threads = 1
[data]
dataset = "bimodal"
[generator]
plugin = "mlp"
width = 256
depth = 3
[train]
steps = 3000
n_gen = 128
n_pos = 128
lr = 0.001
eval_every = 300
sample_every = 1000
checkpoint_minutes = 0
$2
[eval]
n_samples = 256
EOF
}

# Every dataset and the status of cell 0 of $1 equal those of $2, bit for bit
# (the train table's timing columns aside).
same_results() {
  "$py" - "$1" "$2" <<'EOF'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r")["cells/0000"], h5py.File(sys.argv[2], "r")["cells/0000"]
for k in ("status", "steps_done"):
    assert a.attrs[k] == b.attrs[k], (k, a.attrs[k], b.attrs[k])
names = []
a.visit(names.append)
n = 0
for name in names:
    x = a[name]
    if not isinstance(x, h5py.Dataset):
        continue
    assert name in b, f"{name} missing"
    u, v = x[()], b[name][()]
    if x.dtype.names:
        for f in x.dtype.names:
            if f == "seconds" or f.startswith("t_"):
                continue
            assert np.array_equal(u[f], v[f]), f"{name}/{f} differs"
    else:
        assert u.shape == v.shape and np.array_equal(u.view(np.uint8), v.view(np.uint8)), f"{name} differs"
    n += 1
assert n >= 8, n
print(f"  {n} datasets equal bit for bit")
EOF
}
worker_pid() { pgrep -f -- "--cell-worker $tmp/$1.toml" | head -1; }
# wait_for PATTERN FILE: until FILE has the line, or fail once drift-run ($pid) has ended without it.
wait_for() { wait_for_line "$pid" "$1" "$2" || fail "drift-run ended with no line matching '$1' in $2"; }

write_toml ref ""
"$run" "$tmp/ref.toml" > "$tmp/ref.out" 2>&1 || { cat "$tmp/ref.out"; fail "uninterrupted run failed"; }

# ---------------------------------------------------------------- Ctrl-C, then resume
write_toml int ""
"$run" "$tmp/int.toml" > "$tmp/int1.out" 2>&1 &
pid=$!; bg+=("$pid")
wait_for "eval step 600" "$tmp/int1.out"
kill -INT "$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" = 130 ] || { cat "$tmp/int1.out"; fail "SIGINT: exit $rc, expected 130"; }
grep -qE "^cell 0 paused after step [0-9]+ of 3000 \(checkpoint .*/0000.ckpt\)" "$tmp/int1.out" ||
  { cat "$tmp/int1.out"; fail "SIGINT: no 'paused' line"; }
[ -f "$tmp/results/int.cells/0000.ckpt" ] || fail "SIGINT: no checkpoint"
[ -z "$(worker_pid int)" ] || fail "SIGINT: the cell process is still running"
"$run" --status "$tmp/int.toml" > "$tmp/int.status"
grep -qE "^0 +paused .*paused at step [0-9]+ of 3000" "$tmp/int.status" || { cat "$tmp/int.status"; fail "--status: not paused"; }
step=$(sed -nE 's/.*paused at step ([0-9]+).*/\1/p' "$tmp/int.status")
"$run" "$tmp/int.toml" > "$tmp/int2.out" 2>&1 || { cat "$tmp/int2.out"; fail "resumed run failed"; }
grep -q "cell 0 started (resuming after step $step)" "$tmp/int2.out" || { cat "$tmp/int2.out"; fail "did not resume after step $step"; }
grep -qE "eval step 300:" "$tmp/int2.out" && { cat "$tmp/int2.out"; fail "the resumed run evaluated step 300 again"; }
[ ! -e "$tmp/results/int.cells/0000.ckpt" ] && [ ! -e "$tmp/results/int.cells/0000.ckpt.prev" ] ||
  fail "a finished cell left its checkpoint"
echo "SIGINT after step $step, resumed:"
same_results "$tmp/results/ref.h5" "$tmp/results/int.h5" || fail "resumed after SIGINT: not equal to the uninterrupted run"

# ---------------------------------------------------------------- kill -9 after a periodic checkpoint
write_toml k9 "checkpoint_every = 700"
"$run" "$tmp/k9.toml" > "$tmp/k91.out" 2>&1 &
pid=$!; bg+=("$pid")
wait_for "checkpoint after step 1400 written" "$tmp/results/k9.cells/0000.h5.stderr"
kill -9 "$(worker_pid k9)"
rc=0; wait "$pid" || rc=$?
[ "$rc" = 1 ] || { cat "$tmp/k91.out"; fail "kill -9 of the cell: exit $rc, expected 1"; }
grep -qE "^cell 0 failed.*killed by signal 9" "$tmp/k91.out" || { cat "$tmp/k91.out"; fail "kill -9: cell not failed"; }
"$run" "$tmp/k9.toml" > "$tmp/k92.out" 2>&1 || { cat "$tmp/k92.out"; fail "run after kill -9 failed"; }
grep -qE "cell 0 started \(resuming after step (1400|2100)\)" "$tmp/k92.out" || { cat "$tmp/k92.out"; fail "did not resume from the periodic checkpoint"; }
echo "kill -9 after a periodic checkpoint, resumed ($(grep -oE 'resuming after step [0-9]+' "$tmp/k92.out")):"
same_results "$tmp/results/ref.h5" "$tmp/results/k9.h5" || fail "resumed after kill -9: not equal"

# ---------------------------------------------------------------- another configuration, --restart
write_toml cfg ""
"$run" "$tmp/cfg.toml" > "$tmp/cfg1.out" 2>&1 &
pid=$!; bg+=("$pid")
wait_for "eval step 600" "$tmp/cfg1.out"
kill -TERM "$pid"
wait "$pid" || true
[ -f "$tmp/results/cfg.cells/0000.ckpt" ] || fail "SIGTERM: no checkpoint"
sed -i 's/^lr = 0.001/lr = 0.002/' "$tmp/cfg.toml"
rc=0; "$run" "$tmp/cfg.toml" > "$tmp/cfg2.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$tmp/cfg2.out"; fail "another configuration: exit $rc, expected 1"; }
grep -qE "^cell 0 failed.*0000.ckpt: written for another run of this cell \(the cell's configuration differs: \[train\] lr = 0.001 there, lr = 0.002 here\).*--restart" "$tmp/cfg2.out" ||
  { cat "$tmp/cfg2.out"; fail "another configuration: no one-line refusal naming lr"; }
[ -f "$tmp/results/cfg.cells/0000.ckpt" ] || fail "the refused checkpoint was removed"
"$run" --restart "$tmp/cfg.toml" > "$tmp/cfg3.out" 2>&1 || { cat "$tmp/cfg3.out"; fail "--restart failed"; }
grep -q "resuming" "$tmp/cfg3.out" && { cat "$tmp/cfg3.out"; fail "--restart resumed"; }
[ ! -e "$tmp/results/cfg.cells/0000.ckpt" ] || fail "--restart left the checkpoint"

# ---------------------------------------------------------------- data-parallel, SIGTERM
write_toml dref "nproc = 2"
sed -i 's/^steps = 3000/steps = 1500/' "$tmp/dref.toml"
"$run" "$tmp/dref.toml" > "$tmp/dref.out" 2>&1 || { cat "$tmp/dref.out"; fail "nproc = 2: uninterrupted run failed"; }
sed 's/name = "dref"/name = "dist"/; s#results/dref.h5#results/dist.h5#' "$tmp/dref.toml" > "$tmp/dist.toml"
"$run" "$tmp/dist.toml" > "$tmp/dist1.out" 2>&1 &
pid=$!; bg+=("$pid")
wait_for "eval step 300" "$tmp/dist1.out"
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" = 143 ] || { cat "$tmp/dist1.out"; fail "nproc = 2, SIGTERM: exit $rc, expected 143"; }
grep -qE "^cell 0 paused after step [0-9]+ of 1500" "$tmp/dist1.out" || { cat "$tmp/dist1.out"; fail "nproc = 2: not paused"; }
"$run" "$tmp/dist.toml" > "$tmp/dist2.out" 2>&1 || { cat "$tmp/dist2.out"; fail "nproc = 2: resumed run failed"; }
grep -q "resuming after step" "$tmp/dist2.out" || { cat "$tmp/dist2.out"; fail "nproc = 2: did not resume"; }
echo "nproc = 2, SIGTERM, resumed:"
same_results "$tmp/results/dref.h5" "$tmp/results/dist.h5" || fail "nproc = 2 resumed: not equal"
echo "checkpoint: ok"
