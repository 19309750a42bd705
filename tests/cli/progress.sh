#!/usr/bin/env bash
# What `drift-run FILE` and `drift-run --status FILE` say while a cell works
# through its phases (schemas/results.md, "Progress while it runs"): one tiny
# cell that pre-trains its encoder (mae_resnet, 60 steps), builds its
# real-feature cache (300 images) and trains (30 steps), on a 16x16 image set
# made here. A few CPU seconds.
#  - the cell's log file is named when it starts, and exists while it runs;
#  - while it waits for the encoder's weights lock (held here, as another
#    cell pre-training the same encoder would), --status says `running` with
#    the phase, `[pretrain mae_resnet] waiting for ...`, and the log file;
#  - not on a terminal: one summary line per phase, with its counts and rate,
#    in order pretrain, cache, train; no `step 0/0`;
#  - on a terminal (script(1)): live lines of the pre-training and of the
#    training with step/total, loss, steps/s and ETA.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
py=$DRIFT_SOURCE_DIR/.venv/bin/python
run=$DRIFT_BINARY_DIR/bin/drift-run
fail() { echo "FAIL: $*"; exit 1; }

[ -x "$run" ] || fail "$run not built"
[ -x "$py" ] || fail "$py not found: run scripts/setup.sh (it creates .venv with h5py)"
"$py" -c "import h5py, numpy" 2>/dev/null || fail "$py lacks h5py/numpy: run scripts/setup.sh"

tmp=$(mktemp -d /tmp/drift-progress-XXXXXX)
bg=()
cleanup() {
  for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
cd "$tmp"

"$py" - <<'EOF'
import h5py, numpy as np
rng = np.random.default_rng(0)
with h5py.File("set.h5", "w") as f:
    f["images"] = rng.integers(0, 256, (300, 1, 16, 16), dtype=np.uint8)
    f["labels"] = np.arange(300) % 3
EOF
cat > progress.toml <<'EOF'
[experiment]
name = "progress"
seed = 0
output = "results/progress.h5"
device = "cpu"
threads = 1

[data]
dataset = "images"
path = "set.h5"

[generator]
plugin = "dit"
hidden = 32
depth = 1
heads = 2
patch = 4
in_context = 2

[encoder]
plugin = "mae_resnet"
widths = [8, 16]
blocks = [1, 1]
weights = "enc/mae.pt"
pretrain_steps = 60
pretrain_batch = 8

[kernel]
temperatures = [0.05, 0.2]

[train]
steps = 30
n_classes = 3
n_gen = 4
n_pos = 6
n_unc = 2
warmup = 1
eval_every = 0
sample_every = 0
feature_cache = "float32"
feature_cache_dir = "features"

[eval]
metrics = []
n_samples = 8
EOF
log=results/progress.cells/0000.h5.stderr

# ---------------------------------------------------------------- --status while it waits
mkdir -p enc
flock -o enc/mae.pt.lock sleep 120 &
holder=$!; bg+=("$holder")
for _ in $(seq 100); do
  flock -n enc/mae.pt.lock true 2>/dev/null || break
  sleep 0.05
done
"$run" progress.toml > run.out 2>&1 &
runner=$!; bg+=("$runner")
seen=
for _ in $(seq 300); do
  "$run" --status progress.toml > status.out 2>&1 || { cat status.out; fail "--status failed while the cell runs"; }
  if grep -qE '^0 +running ' status.out && grep -q '\[pretrain mae_resnet\] waiting for enc/mae.pt.lock' status.out; then
    seen=1
    break
  fi
  kill -0 "$runner" 2>/dev/null || break
  sleep 0.1
done
[ -n "$seen" ] || { cat status.out run.out; fail "--status never showed the running cell waiting in its pretrain phase"; }
grep -qF "; log: $log" status.out || { cat status.out; fail "--status does not name the running cell's log file"; }
[ -f "$log" ] || fail "the log file $log named by --status does not exist while the cell runs"
grep -qE "^\[[0-9ms]+\] cell 0 started, log: $log\$" run.out || { cat run.out; fail "no 'cell 0 started, log: $log' line"; }
kill "$holder" 2>/dev/null || true
rc=0; wait "$runner" || rc=$?
[ "$rc" = 0 ] || { cat run.out; cat "$log" 2>/dev/null || true; fail "the run exited $rc"; }

# ---------------------------------------------------------------- the log: one line per phase
if grep -q $'\x1b' run.out; then fail "escape sequences in non-tty output"; fi
if grep -q 'step 0/0' run.out; then cat run.out; fail "a 'step 0/0' line"; fi
n=0
for re in 'cell 0 started, log: ' \
          'cell 0 \[pretrain mae_resnet\] step 60/60 in [0-9ms]+ \([0-9.]+ steps/s\)$' \
          'cell 0 \[cache mae_resnet\] 300/300 images in [0-9ms]+ \([0-9.]+ images/s\)$' \
          'cell 0 \[train\] step 30/30 in [0-9ms]+ \([0-9.]+ steps/s\)$' \
          '^cell 0 done in '; do
  line=$(grep -nE "$re" run.out | head -1 | cut -d: -f1)
  [ -n "$line" ] || { cat run.out; fail "no line matching '$re'"; }
  [ "$line" -gt "$n" ] || { cat run.out; fail "'$re' out of order"; }
  n=$line
done
"$run" --status progress.toml > status.out 2>&1
grep -qE '^0 +done ' status.out || { cat status.out; fail "--status after the run: cell 0 not done"; }
if grep -q '\[' status.out; then cat status.out; fail "--status shows a phase for a finished cell"; fi

# ---------------------------------------------------------------- a terminal: live phase lines
if command -v script > /dev/null; then
  rm -rf enc features
  TERM=xterm script -qec "'$run' --restart progress.toml" /dev/null > tty.out 2>&1 \
    || { cat -v tty.out; fail "the run under script(1) failed"; }
  grep -aqE 'cell 0 +\[pretrain mae_resnet\] step [0-9]+/60  loss [-+0-9.e]+  ([0-9.]+|\?) steps/s  ETA [0-9?]' tty.out \
    || { cat -v tty.out; fail "no live pre-training line with step/steps, loss, steps/s and ETA"; }
  grep -aqE 'cell 0 +\[train\] step [0-9]+/30  loss [-+0-9.e]+  ([0-9.]+|\?) steps/s  ETA [0-9?]' tty.out \
    || { cat -v tty.out; fail "no live training line with step/steps, loss, steps/s and ETA"; }
  grep -aqE 'cell 0 \[cache mae_resnet\] 300/300 images in ' tty.out \
    || { cat -v tty.out; fail "no cache summary line on a terminal"; }
fi
echo "progress.sh: ok"
