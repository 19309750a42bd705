#!/usr/bin/env bash
# A full disk during a sweep, on a real small tmpfs (the tests run as root; the
# test is skipped, saying why, where mounting is not allowed):
#  - first run: the results directory fills up while cells are written and
#    merged. drift-run exits 1 (not a signal), says on one line which path
#    could not be written and that the device is full, reports the queued cells
#    as "not run", and leaves no temporary file; the finished cells survive;
#  - after space is freed (the tmpfs grown), the same command finishes the
#    rest: the finished cells are skipped (their files byte-identical), the
#    results file holds all six cells, done;
#  - the other writers on a full tmpfs: the encoder's weights file written by
#    pre-training, the real-feature cache, drift-report's PNGs: one line naming
#    the file and saying the device is full, exit 1, no temporary file; the
#    queued cells of the sweep reported as not run; with room, it finishes.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
run=$DRIFT_BINARY_DIR/bin/drift-run
py=$DRIFT_SOURCE_DIR/.venv/bin/python
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$run" ] || fail "$run not built"
[ -x "$py" ] || fail "$py not found: run scripts/setup.sh"

tmp=$(mktemp -d /tmp/drift-full-disk-XXXXXX)
mnt=$tmp/mnt
mkdir -p "$mnt"
cleanup() {
  mountpoint -q "$mnt" && umount -l "$mnt" 2> /dev/null || true
  mountpoint -q "$tmp/small" && umount -l "$tmp/small" 2> /dev/null || true
  mountpoint -q "$tmp/plots" && umount -l "$tmp/plots" 2> /dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
if ! mount -t tmpfs -o size=16m tmpfs "$mnt" 2> "$tmp/mount.err"; then
  echo "skip: cannot mount a tmpfs here ($(head -1 "$tmp/mount.err")); the full-disk test needs root and mount(2)"
  exit 77
fi

write_toml() {  # write_toml OUTPUT
  cat > "$tmp/toy6.toml" << TOML
[experiment]
name = "toy6"
seed = 0
output = "$1"
threads = 1

[data]
dataset = "bimodal"

[generator]
plugin = "mlp"

[kernel]
plugin = "laplace"
min_affinity = 0.0

[train]
steps = 40
n_gen = 64
n_pos = 64
eval_every = 20
sample_every = 20

[eval]
metrics = ["mmd"]
n_samples = 512

[grid]
"experiment.seed" = [0, 1, 2, 3, 4, 5]
TOML
}

# The size of one finished cell file, measured on the roomy tmpfs.
write_toml "$mnt/probe/toy6.h5"
"$run" --cells 0 "$tmp/toy6.toml" > "$tmp/probe.log" 2>&1 || { cat "$tmp/probe.log"; fail "probe run"; }
cell_bytes=$(stat -c %s "$mnt/probe/toy6.cells/0000.h5")
rm -rf "$mnt/probe"
# Room for about two cells and one merge: the sweep must run out of space.
size_k=$(( cell_bytes * 5 / 2 / 1024 ))
umount "$mnt"
mount -t tmpfs -o size=${size_k}k tmpfs "$mnt"
echo "cell file: $cell_bytes bytes; tmpfs: ${size_k} KiB"

write_toml "$mnt/toy6.h5"
set +e
"$run" --jobs 1 "$tmp/toy6.toml" > "$tmp/run1.out" 2> "$tmp/run1.err"
rc=$?
set -e
cat "$tmp/run1.err"
[ "$rc" -eq 1 ] || { cat "$tmp/run1.out"; fail "first run: exit $rc, expected 1 (>128 is a signal)"; }
grep -qE "^drift-run: $mnt/toy6(\.cells/[0-9]+)?\.h5: cannot write, the device is full \(.*No space left on device.*\)" "$tmp/run1.err" \
  || fail "no one-line error naming the path and saying the device is full"
grep -q "stopped: the device is full" "$tmp/run1.err" || fail "no final line saying why the sweep stopped"
summary=$(grep "^drift-run: [0-9]* done" "$tmp/run1.out") || { cat "$tmp/run1.out"; fail "no summary line"; }
echo "$summary"
grep -qE "[0-9]+ not run \(cells? [0-9, ]+\)" <<< "$summary" || fail "the queued cells are not reported as not run"
leftovers=$(find "$mnt" -name '*.tmp-*')
[ -z "$leftovers" ] || fail "temporary files left behind: $leftovers"

# The cells that finished: readable, status done; remembered byte for byte.
"$py" - "$mnt/toy6.cells" > "$tmp/done1.txt" << 'PY' || fail "a finished cell file is unreadable"
import glob, os, sys, h5py
for p in sorted(glob.glob(os.path.join(sys.argv[1], "[0-9]*.h5"))):
    with h5py.File(p, "r") as f:
        if f["cell"].attrs["status"] == "done":
            print(os.path.basename(p))
PY
n_done1=$(wc -l < "$tmp/done1.txt")
[ "$n_done1" -ge 1 ] && [ "$n_done1" -lt 6 ] || fail "expected some but not all cells done after the first run, got $n_done1"
(cd "$mnt/toy6.cells" && md5sum $(cat "$tmp/done1.txt")) > "$tmp/done1.md5"

# Space freed: the same command finishes the rest without redoing the done cells.
mount -o remount,size=32m "$mnt"
"$run" --jobs 1 "$tmp/toy6.toml" > "$tmp/run2.out" 2>&1 || { cat "$tmp/run2.out"; fail "second run failed"; }
grep -q "^drift-run: $((6 - n_done1)) done, 0 failed, 0 diverged, $n_done1 skipped (already finished)" "$tmp/run2.out" \
  || { cat "$tmp/run2.out"; fail "second run did not run exactly the remaining cells"; }
(cd "$mnt/toy6.cells" && md5sum -c --quiet "$tmp/done1.md5") || fail "a finished cell file changed"
"$py" - "$mnt/toy6.h5" << 'PY' || fail "the results file is not complete"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    st = [s.decode() if isinstance(s, bytes) else s for s in f["summary"]["status"][()]]
    assert st == ["done"] * 6, st
print("results file: 6 cells done")
PY
[ -z "$(find "$mnt" -name '*.tmp-*')" ] || fail "temporary files left after the second run"

# ---------------------------------------------------------------- the other writers
# The encoder's weights file (pre-training), the real-feature cache and
# drift-report's PNGs, each on a tmpfs too small for it: one line naming the
# file and saying the device is full, exit 1 (no signal), no temporary file;
# for a sweep, the queued cells reported as not run; with room, the same command
# finishes.
small=$tmp/small
mkdir -p "$small"
"$py" - "$tmp/set.h5" << 'PY'
import sys, h5py, numpy as np
r = np.random.default_rng(0)
with h5py.File(sys.argv[1], "w") as f:
    f["images"] = r.integers(0, 256, (300, 1, 16, 16), dtype=np.uint8)
    f["labels"] = (np.arange(300) % 3).astype(np.int64)
PY
cat > "$tmp/img.toml" << TOML
[experiment]
name = "img"
output = "$tmp/results/img.h5"
threads = 1
[data]
dataset = "images"
path = "$tmp/set.h5"
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
weights = "$small/enc.pt"
pretrain_steps = 20
pretrain_batch = 8
[kernel]
temperatures = [0.05, 0.2]
[train]
steps = 4
n_classes = 3
n_gen = 4
n_pos = 6
warmup = 1
eval_every = 0
feature_cache = "float32"
feature_cache_dir = "$small/features"
[eval]
metrics = []
n_samples = 8
[grid]
"experiment.seed" = [0, 1, 2]
TOML
# $1: tmpfs size, $2: what fills up (for messages), $3: the path the error must name (a regex)
full_sweep() {
  mountpoint -q "$small" && umount "$small"
  mount -t tmpfs -o size="$1" tmpfs "$small"
  rm -rf "$tmp/results"
  rc=0; "$run" --jobs 1 "$tmp/img.toml" > "$tmp/img.out" 2> "$tmp/img.err" || rc=$?
  [ "$rc" = 1 ] || { cat "$tmp/img.out" "$tmp/img.err"; fail "$2 on a full disk: exit $rc, expected 1"; }
  grep -qE "^cell 0 failed .*: $3: (.*: )?cannot write, the device is full \(.*No space left on device" "$tmp/img.out" ||
    { cat "$tmp/img.out"; fail "$2 on a full disk: no one-line error naming $3"; }
  grep -qE "1 failed, .*2 not run \(cells 1, 2\)" "$tmp/img.out" || { cat "$tmp/img.out"; fail "$2: the queued cells are not reported as not run"; }
  [ -z "$(find "$small" -name '*.tmp-*')" ] || fail "$2: temporary files left: $(find "$small" -name '*.tmp-*')"
  echo "$2 on a full disk: $(grep -E '^cell 0 failed' "$tmp/img.out" | cut -c1-160)..."
}
full_sweep 24k "encoder weights" "$small/enc.pt"
full_sweep 600k "feature cache" "$small/features/mae_resnet-[0-9a-f]+\.h5"
mount -o remount,size=16m "$small"
"$run" --jobs 1 "$tmp/img.toml" > "$tmp/img2.out" 2>&1 || { cat "$tmp/img2.out"; fail "image sweep with room failed"; }
grep -q "^drift-run: 3 done" "$tmp/img2.out" || { cat "$tmp/img2.out"; fail "image sweep with room: not 3 done"; }

report=$DRIFT_BINARY_DIR/bin/drift-report
mkdir -p "$tmp/plots"
mount -t tmpfs -o size=40k tmpfs "$tmp/plots"
rc=0; "$report" "$tmp/results/img.h5" --out "$tmp/plots" > /dev/null 2> "$tmp/report.err" || rc=$?
umount -l "$tmp/plots"
[ "$rc" = 1 ] || { cat "$tmp/report.err"; fail "drift-report on a full disk: exit $rc, expected 1"; }
[ "$(wc -l < "$tmp/report.err")" = 1 ] && grep -qE "^drift-report: error: $tmp/plots/img_[a-z_]+\.png: cannot write, the device is full" "$tmp/report.err" ||
  { cat "$tmp/report.err"; fail "drift-report on a full disk: not one line naming the PNG"; }
echo "report PNGs on a full disk: $(cat "$tmp/report.err")"
echo "cli.full_disk: OK"
