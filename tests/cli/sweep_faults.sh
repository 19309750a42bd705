#!/usr/bin/env bash
# Faults around the merge of cell files into results/<name>.h5, against the
# real binaries (docs/results/reliability.md):
#  - two drift-run processes started on one experiment at once: every cell
#    trained exactly once, both exit 0, the only extra output a note per cell
#    the other holds, and the merged file holds every cell;
#  - kill -9, SIGTERM and SIGINT inside a merge (held there by a test hook):
#    the results file is the previous one (kill -9) or a newer one, complete
#    and readable by h5py, never torn; the next run repairs it (every cell,
#    the killed merge's temporary file removed);
#  - a reader (h5py) opening the results file over and over while drift-run
#    merges into it: every open sees a complete file; one handle kept open
#    across merges keeps reading the file it opened.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
py=$DRIFT_SOURCE_DIR/.venv/bin/python
run=$DRIFT_BINARY_DIR/bin/drift-run
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$run" ] || fail "$run not built"
"$py" -c "import h5py, numpy" 2>/dev/null || fail "$py lacks h5py/numpy: run scripts/setup.sh"

tmp=$(mktemp -d /tmp/drift-faults-XXXXXX)
bg=()
cleanup() {
  for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pkill -9 -f -- "--cell-worker $tmp/" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
source "$DRIFT_SOURCE_DIR/tests/cli/lib/wait.sh"

# $1: name, $2: number of seeds (cells), $3: [generator] lines, $4: [train] lines
write_toml() {
  local seeds
  seeds=$(seq -s, 0 $(($2 - 1)))
  cat > "$tmp/$1.toml" <<EOF
[experiment]
name = "$1"
output = "$tmp/results/$1.h5"
device = "cpu"
threads = 1
[data]
dataset = "bimodal"
[generator]
$3
[encoder]
plugin = "identity"
[train]
$4
[eval]
metrics = ["mmd"]
[grid]
"experiment.seed" = [$seeds]
EOF
}
# The results file $1 is complete: its summary lists exactly the cells under
# /cells, each done with its train table; prints the number of cells.
check_results() {
  "$py" - "$1" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    cells = sorted(f["cells"])
    summary = f["summary"][()]
    assert sorted("%04d" % c for c in summary["cell"]) == cells, (summary["cell"], cells)
    for c in cells:
        g = f["cells"][c]
        assert g.attrs["status"] == "done", (c, g.attrs["status"])
        assert g["train"].shape[0] > 0
        g["samples"][sorted(g["samples"])[-1]][()]  # the last dataset written reads back
    print(len(cells))
EOF
}

# ---------------------------------------------------------------- two at once
write_toml two 8 $'plugin = "mlp"\nwidth = 64' $'steps = 400\nn_gen = 64\nn_pos = 64\neval_every = 0'
"$run" --jobs 1 "$tmp/two.toml" > "$tmp/two.a" 2> "$tmp/two.a.err" &
a=$!; bg+=("$a")
"$run" --jobs 1 "$tmp/two.toml" > "$tmp/two.b" 2> "$tmp/two.b.err" &
b=$!; bg+=("$b")
rca=0; wait "$a" || rca=$?
rcb=0; wait "$b" || rcb=$?
[ "$rca" = 0 ] && [ "$rcb" = 0 ] || { cat "$tmp"/two.*; fail "two at once: exit $rca / $rcb"; }
[ ! -s "$tmp/two.a.err" ] && [ ! -s "$tmp/two.b.err" ] || { cat "$tmp"/two.*.err; fail "two at once: errors on stderr"; }
# Every cell done exactly once, by one of them.
done_lines=$(cat "$tmp/two.a" "$tmp/two.b" | grep -E '^cell [0-9]+ done' | sed -E 's/^cell ([0-9]+) done.*/\1/' | sort -n | tr '\n' ' ')
[ "$done_lines" = "0 1 2 3 4 5 6 7 " ] || { cat "$tmp/two.a" "$tmp/two.b"; fail "two at once: cells done: $done_lines"; }
# Whatever else they printed is the start/summary lines and notes about the other's cells.
others=$(cat "$tmp/two.a" "$tmp/two.b" | grep -vE '^(cell [0-9]+ done|\[.*\] cell [0-9]+ (started|\[train\]|eval step)|drift-run: .*(cells, .* selected|done, 0 failed)|cell [0-9]+ skipped: another drift-run (runs it|finished it meanwhile))' || true)
[ -z "$others" ] || { echo "$others"; fail "two at once: unexpected output"; }
grep -qE "skipped: another drift-run" "$tmp/two.a" "$tmp/two.b" || echo "  (the two never met at a cell this time)"
n=$(check_results "$tmp/results/two.h5") || fail "two at once: results file"
[ "$n" = 8 ] || fail "two at once: $n cells merged"
echo "two at once: 8 cells, each trained once ($(grep -cE '^cell [0-9]+ done' "$tmp/two.a") / $(grep -cE '^cell [0-9]+ done' "$tmp/two.b")), one merged file"

# ---------------------------------------------------------------- stops during merges
# Short cells with big sample arrays; DRIFT_TEST_PAUSE_RENAME holds each merge
# for 2 s with its complete temporary file written and not yet renamed (an
# io/h5.cpp test hook): the stop lands inside the merge every time.
write_toml big 8 $'plugin = "particles"\ncount = 4000' \
  $'steps = 40\nn_gen = 4000\nn_pos = 256\neval_every = 0\nsample_every = 1\nwarmup = 0'
sed -i 's/^metrics = \["mmd"\]/metrics = []\nn_samples = 4000/' "$tmp/big.toml"
"$run" --jobs 2 --cells 0-1 "$tmp/big.toml" > "$tmp/big.out" 2>&1 || { cat "$tmp/big.out"; fail "first cells"; }
trials=0
for sig in KILL TERM INT KILL TERM INT; do
  before=$(check_results "$tmp/results/big.h5") || fail "results file before the stop"
  DRIFT_TEST_PAUSE_RENAME="2000:/big.h5" "$run" --jobs 2 "$tmp/big.toml" > "$tmp/big.out" 2>&1 &
  pid=$!; bg+=("$pid")
  # This run's merge (the sweep's own pid) is writing.
  wait_until "$pid" test -e "$tmp/results/big.h5.tmp-$pid" ||
    { cat "$tmp/big.out"; fail "drift-run ended without starting its merge"; }
  kill -s "$sig" "$pid"
  rc=0; wait "$pid" 2>/dev/null || rc=$?
  pkill -9 -f -- "--cell-worker $tmp/big.toml" 2>/dev/null || true
  trials=$((trials + 1))
  after=$(check_results "$tmp/results/big.h5") || { cat "$tmp/big.out"; fail "SIG$sig during a merge: the results file is torn"; }
  # kill -9: the previous file (the temporary one is left for the next run);
  # SIGTERM / SIGINT: the merge finishes, then the final merge.
  case $sig in
    KILL) [ "$after" = "$before" ] || fail "kill -9 during a merge: $after cells, expected the previous $before" ;;
    *) [ "$rc" = $((128 + $(kill -l "$sig"))) ] || { cat "$tmp/big.out"; fail "SIG$sig during a merge: exit $rc"; }
       [ "$after" -ge "$before" ] || fail "SIG$sig during a merge: $after cells, fewer than $before"
       [ -z "$(ls "$tmp/results"/big.h5.tmp-* 2>/dev/null)" ] || fail "SIG$sig during a merge left its temporary" ;;
  esac
  echo "  SIG$sig inside a merge: $before cells before, $after after, exit $rc"
done
"$run" --jobs 2 "$tmp/big.toml" > "$tmp/big.last" 2>&1 || { cat "$tmp/big.last"; fail "the run after the stops failed"; }
n=$(check_results "$tmp/results/big.h5") || fail "after the stops: results file"
[ "$n" = 8 ] || fail "after the stops: $n cells"
[ -z "$(find "$tmp/results" -name '*.tmp-*')" ] || fail "temporaries left: $(find "$tmp/results" -name '*.tmp-*')"
echo "stops inside merges: $trials (kill -9, SIGTERM, SIGINT), never a torn file; the next run completed all 8 cells and removed the leftovers"

# ---------------------------------------------------------------- a reader during merges
"$run" --restart --jobs 2 "$tmp/big.toml" > "$tmp/read.out" 2>&1 &
pid=$!; bg+=("$pid")
"$py" - "$tmp/results/big.h5" "$pid" <<'EOF' || fail "a reader during merges"
import os, sys, time, h5py
path, pid = sys.argv[1], int(sys.argv[2])
kept = h5py.File(path, "r")            # the file as it was before this run
first = sorted(kept["cells"])
opens = 0
def alive():  # drift-run is this script's sibling: a zombie counts as gone
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
while alive() and opens < 100000:
    try:
        with h5py.File(path, "r") as f:
            cells = sorted(f["cells"])
            assert len(f["summary"][()]) == len(cells), "summary and cells disagree"
            for c in cells[-1:]:
                f["cells"][c]["train"][()]
        opens += 1
    except FileNotFoundError:
        pass
    # The kept handle still reads the file it opened, whatever was renamed over it.
    time.sleep(0.01)
    assert sorted(kept["cells"]) == first
    kept["cells"][first[-1]]["train"][()]
print(f"  {opens} opens during the merges, all complete; the kept handle read {len(first)} cells throughout")
EOF
wait "$pid" || { cat "$tmp/read.out"; fail "the sweep under the reader failed"; }
n=$(check_results "$tmp/results/big.h5") || fail "after the reader: results file"
[ "$n" = 8 ] || fail "after the reader: $n cells"
# ---------------------------------------------------------------- a cell that fails after writing samples
# The failing cell keeps what it logged (train rows, the samples of step 5)
# beside its error; the other cells are untouched.
plug=$DRIFT_BINARY_DIR/test_plugins
cat > "$tmp/late.toml" <<EOF
[experiment]
name = "late"
output = "$tmp/results/late.h5"
threads = 1
[plugins]
paths = ["$plug/crash_generator_plugin.so"]
[data]
dataset = "bimodal"
[generator]
plugin = "crash_after"
[generator.crash_after]
healthy_steps = 8
mode = "throw"
[encoder]
plugin = "identity"
[train]
steps = 12
n_gen = 32
n_pos = 32
eval_every = 0
sample_every = 5
[eval]
metrics = ["mmd"]
n_samples = 64
[grid]
"generator.plugin" = ["mlp", "crash_after", "mlp"]
EOF
rc=0; "$run" --jobs 1 "$tmp/late.toml" > "$tmp/late.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$tmp/late.out"; fail "a cell failing after its samples: exit $rc, expected 1"; }
"$py" - "$tmp/results/late.h5" <<'EOF' || { cat "$tmp/late.out"; fail "a cell failing after its samples"; }
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    st = {k: f["cells"][k].attrs["status"] for k in f["cells"]}
    assert st == {"0000": "done", "0001": "failed", "0002": "done"}, st
    c = f["cells/0001"]
    assert "crash_after: training call 9 throws" in c.attrs["error"], c.attrs["error"]
    assert sorted(c["samples"]) == ["0000000000", "0000000005"], sorted(c["samples"])
    assert c["train"].shape[0] == 8, c["train"].shape
    for k in ("0000", "0002"):
        assert f["cells"][k]["train"].shape[0] == 12
print("  the failed cell kept 8 train rows and the samples of steps 0 and 5; the others are done")
EOF
echo "sweep_faults: ok"
