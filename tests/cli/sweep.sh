#!/usr/bin/env bash
# The sweep runner, `drift-run FILE` (README.md, schemas/results.md):
#  - a grid of 4 cells, one crashing (abort) and one diverging (NaN): exit 1,
#    the other cells done; /summary, cell attributes, train/eval tables,
#    samples as in schemas/results.md; one line per finished cell (not a tty);
#  - running again skips finished cells and redoes the failed one; --restart
#    redoes all (--jobs 1 gives bit-identical tables to --jobs 2); --cells 1;
#  - values added at the end of a grid, or a copied file, keep finished cells;
#  - bad --cells lists: one-line error naming the part and the valid range,
#    exit 1, nothing written;
#  - kill -9 of a running sweep: the cells die with it, the results file stays
#    valid with only finished cells, running again completes the rest;
#  - SIGTERM: cells stopped, exit 143, finished cells kept;
#  - each evaluation logged as it happens (the values of the results file);
#  - on a terminal (script(1)): live lines with the phase, loss, steps/s and ETA
#    (tests/cli/progress.sh checks the phases before training).
# Test generators: tests/plugins/{crash,nan,slow}_generator_plugin.cpp.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
py=$DRIFT_SOURCE_DIR/.venv/bin/python
run=$DRIFT_BINARY_DIR/bin/drift-run
plug=$DRIFT_BINARY_DIR/test_plugins
fail() { echo "FAIL: $*"; exit 1; }

[ -x "$run" ] || fail "$run not built"
for p in crash nan slow; do
  [ -f "$plug/${p}_generator_plugin.so" ] || fail "$plug/${p}_generator_plugin.so not built (target drift_test_plugins)"
done
[ -x "$py" ] || fail "$py not found: run scripts/setup.sh (it creates .venv with h5py, pandas)"
"$py" -c "import h5py, numpy, pandas" 2>/dev/null || fail "$py lacks h5py/numpy/pandas: run scripts/setup.sh"

tmp=$(mktemp -d /tmp/drift-sweep-XXXXXX)
bg=()
cleanup() {
  for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
source "$DRIFT_SOURCE_DIR/tests/cli/lib/wait.sh"

# $1: file, $2: output, $3: the [generator] section's lines, $4: [train], [grid] text
write_toml() {
  cat > "$1" <<EOF
[experiment]
name = "$(basename "$1" .toml)"
seed = 0
output = "$2"
device = "cpu"
threads = 1   # the same numbers whatever --jobs (and fast on a busy machine)

[plugins]
paths = ["$plug/crash_generator_plugin.so", "$plug/nan_generator_plugin.so", "$plug/slow_generator_plugin.so"]

[data]
dataset = "bimodal"

[generator]
$3

[encoder]
plugin = "identity"

[kernel]
plugin = "laplace"
temperatures = [0.05, 0.2]

[normalizer]
plugin = "feature_drift"

[eval]
metrics = ["mmd", "energy", "sliced_w", "mode_share"]
n_samples = 64

$4
EOF
}

# Every /cells/<id> present is finished; prints "<id>:<status>" per cell.
statuses() {
  "$py" - "$1" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    for k in sorted(f["cells"]):
        s = f["cells"][k].attrs["status"]
        s = s.decode() if isinstance(s, bytes) else s
        assert s in ("done", "failed", "diverged"), (k, s)
        print(f"{k}:{s}")
EOF
}

# ---------------------------------------------------------------- the 4-cell grid
toml=$tmp/grid4.toml
out=$tmp/results/grid4.h5
write_toml "$toml" "$out" 'plugin = "mlp"' '[train]
steps = 30
n_gen = 32
n_pos = 32
warmup = 5
eval_every = 10
sample_every = 15

[grid]
"generator.plugin" = ["mlp", "crash_after", "nan_after", "particles"]'

rc=0; "$run" --jobs 2 "$toml" > "$tmp/run1.out" 2> "$tmp/run1.err" || rc=$?
[ "$rc" = 1 ] || { cat "$tmp/run1.out" "$tmp/run1.err"; fail "a sweep with a failed cell exited $rc, expected 1"; }
[ -f "$out" ] || fail "no results file $out"
# Not a terminal: no escape sequences, one line per finished cell.
if grep -q $'\x1b' "$tmp/run1.out"; then fail "escape sequences in non-tty output"; fi
cell_lines=$(grep -E '^cell [0-9]+ ' "$tmp/run1.out" || true)
[ "$(grep -c . <<< "$cell_lines")" = 4 ] || { cat "$tmp/run1.out"; fail "expected 4 'cell N ...' lines"; }
while read -r line; do
  [[ "$line" =~ ^cell\ [0-3]\ (done|failed|diverged)\ in\ [0-9]+(s|m[0-9]{2}s)\ \(generator\.plugin=\"[a-z_]+\"\)(:\ .+)?$ ]] \
    || fail "cell line not in the format 'cell N STATUS in TIME (GRID)[: ERROR]': $line"
done <<< "$cell_lines"
grep -qE '^cell 0 done in ' <<< "$cell_lines" || fail "cell 0 not done: $cell_lines"
grep -qE '^cell 1 failed in .*: cell process killed by signal 6 \(SIGABRT' <<< "$cell_lines" \
  || fail "cell 1 not failed with SIGABRT: $cell_lines"
grep -qE '^cell 2 diverged in .*not finite' <<< "$cell_lines" || fail "cell 2 not diverged: $cell_lines"
grep -qE '^cell 3 done in ' <<< "$cell_lines" || fail "cell 3 not done: $cell_lines"
# Each evaluation shows in the log as it happens, with the values the results
# file keeps: cell 0 evaluates at steps 10, 20 and 30.
for s in 10 20 30; do
  grep -qE "^\[[0-9ms]+\] cell 0 eval step $s: mmd [^ ]+ +energy [^ ]+ .*generator\.plugin=\"mlp\"\$" "$tmp/run1.out" \
    || { cat "$tmp/run1.out"; fail "no log line for cell 0's evaluation at step $s"; }
done
mmd20=$(sed -nE 's/^.* cell 0 eval step 20: mmd ([^ ]+) .*$/\1/p' "$tmp/run1.out")
"$py" - "$out" "$mmd20" <<'EOF2' || fail "the logged mmd of step 20 ($mmd20) is not the results file's"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    e = f["cells/0000/eval"][()]
    v = float(e["mmd"][list(e["step"]).index(20)])
assert abs(v - float(sys.argv[2])) <= 1e-5 * max(abs(v), 1e-12), (v, sys.argv[2])
EOF2
tail -1 "$tmp/run1.out" | grep -qx "drift-run: 2 done, 1 failed, 1 diverged, 0 skipped (already finished) -> $out" \
  || fail "last line: $(tail -1 "$tmp/run1.out")"

"$py" - "$out" "$toml" <<'EOF' || fail "results layout (schemas/results.md)"
import sys, h5py, numpy as np, pandas as pd
path, toml = sys.argv[1], sys.argv[2]
s = lambda v: v.decode() if isinstance(v, bytes) else v
with h5py.File(path, "r") as f:
    a = f.attrs
    for k in ("experiment_name", "experiment_file", "experiment_toml", "framework_version",
              "torch_version", "created", "n_cells", "grid_keys"):
        assert k in a, f"root attribute {k} missing"
    assert s(a["experiment_name"]) == "grid4"
    assert s(a["experiment_file"]) == toml
    assert s(a["experiment_toml"]) == open(toml).read()
    assert int(a["n_cells"]) == 4
    assert [s(k) for k in a["grid_keys"]] == ["generator.plugin"], a["grid_keys"]

    summary = pd.DataFrame(f["summary"][()])
    assert list(summary["cell"]) == [0, 1, 2, 3], summary["cell"]
    st = [s(x) for x in summary["status"]]
    assert st == ["done", "failed", "diverged", "done"], st
    assert [s(x) for x in summary["generator.plugin"]] == ["mlp", "crash_after", "nan_after", "particles"]
    for c in ("final_mmd", "final_mmd_floor", "final_energy", "final_energy_floor", "final_sliced_w",
              "final_sliced_w_floor", "final_m_tau_0.05", "final_m_tau_0.2", "steps_done", "wall_time_s"):
        assert c in summary.columns, f"/summary lacks {c}: {list(summary.columns)}"
    assert summary["steps_done"].dtype == np.int64 and summary["wall_time_s"].dtype == np.float64
    # CPU seconds of the cell's process: positive for cells that finished training.
    assert "cpu_time_s" in summary.columns, list(summary.columns)
    for i in (0, 3):
        assert 0 < summary["cpu_time_s"][i] < 600, summary["cpu_time_s"]
        assert float(f["cells"]["%04d" % i].attrs["cpu_time_s"]) == summary["cpu_time_s"][i]
    assert list(summary["steps_done"])[0] == 30 and list(summary["steps_done"])[3] == 30
    assert np.isfinite(summary["final_mmd"][0]) and np.isnan(summary["final_mmd"][1])

    for cid, status in (("0000", "done"), ("0001", "failed"), ("0002", "diverged"), ("0003", "done")):
        g = f["cells"][cid]
        for k in ("status", "config_toml", "grid", "grid.generator.plugin", "seed", "wall_time_s",
                  "steps_done", "device"):
            assert k in g.attrs, f"/cells/{cid} lacks attribute {k}"
        assert s(g.attrs["status"]) == status
        assert s(g.attrs["device"]) == "cpu"
        assert s(g.attrs["grid"]).startswith('generator.plugin="')
        if status != "done":
            assert s(g.attrs["error"]).strip(), f"{cid}: empty error"
            assert "\n" not in s(g.attrs["error"]), f"{cid}: error is not one line"

    failed = f["cells/0001"]
    err = s(failed.attrs["error"])
    assert "signal 6" in err and "SIGABRT" in err, err
    tail = s(failed.attrs["stderr_tail"])
    assert "crash_after: training call 4" in tail, tail
    assert int(failed.attrs["steps_done"]) <= 3
    assert "not finite" in s(f["cells/0002"].attrs["error"])

    # train: step, loss, m_tau_<tau>, grad_norm, lr, seconds
    tr = f["cells/0000/train"][()]
    assert tr.dtype.names == ("step", "loss", "m_tau_0.05", "m_tau_0.2", "grad_norm", "lr", "seconds"), tr.dtype
    assert tr.dtype["step"] == np.int64 and all(tr.dtype[n] == np.float64 for n in tr.dtype.names[1:])
    assert list(tr["step"]) == list(range(1, 31))
    dv = f["cells/0002/train"][()]
    assert not np.isfinite(dv["loss"][-1]) and dv["step"][-1] == 4, dv["step"]
    # eval: step, <metric>, <metric>_floor, mode shares and targets, modes_covered
    ev = f["cells/0000/eval"][()]
    for n in ("step", "mmd", "mmd_floor", "energy", "energy_floor", "sliced_w", "sliced_w_floor",
              "mode_share_0", "mode_share_1", "mode_target_0", "mode_target_1", "modes_covered"):
        assert n in ev.dtype.names, f"eval lacks {n}: {ev.dtype.names}"
    assert list(ev["step"]) == [10, 20, 30], ev["step"]
    assert ev.dtype["modes_covered"] == np.int64
    pd.DataFrame(ev)
    # samples every 15 steps (and before the first), real samples of the same size
    smp = f["cells/0000/samples"]
    assert sorted(smp) == ["0000000000", "0000000015", "0000000030"], sorted(smp)
    x = smp["0000000030"]
    assert x.dtype == np.float32 and x.shape == (64, 2) and int(x.attrs["step"]) == 30
    r = f["cells/0000/real_samples"]
    assert r.dtype == np.float32 and r.shape == (64, 2)
EOF

# Each cell's own file beside the results file; the stderr of the failed one kept.
cells_dir=$tmp/results/grid4.cells
for i in 0 1 2 3; do [ -f "$cells_dir/000$i.h5" ] || fail "no cell file $cells_dir/000$i.h5"; done
[ -z "$(find "$tmp/results" -name '*.tmp-*')" ] || fail "temporary files left: $(find "$tmp/results" -name '*.tmp-*')"
tables() {  # $1: results file -> train/eval tables without `seconds`, eval, samples (one .npz)
  "$py" - "$1" "$2" <<'EOF'
import sys, h5py, numpy as np
out = {}
with h5py.File(sys.argv[1], "r") as f:
    for cid in f["cells"]:
        g = f["cells"][cid]
        if "train" in g:
            t = g["train"][()]
            for n in t.dtype.names:
                if n != "seconds": out[f"{cid}/train/{n}"] = t[n]
        if "eval" in g:
            e = g["eval"][()]
            for n in e.dtype.names: out[f"{cid}/eval/{n}"] = e[n]
        if "samples" in g:
            for k in g["samples"]: out[f"{cid}/samples/{k}"] = g["samples"][k][()]
np.savez(sys.argv[2], **out)
EOF
}
tables "$out" "$tmp/jobs2.npz"

# ---------------------------------------------------------------- run again: skip finished
mtime0=$(stat -c '%i %y' "$cells_dir/0000.h5")
rc=0; "$run" "$toml" > "$tmp/run2.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$tmp/run2.out"; fail "rerun exited $rc, expected 1 (cell 1 fails again)"; }
grep -q ' 3 already finished, 1 to run ' "$tmp/run2.out" || { cat "$tmp/run2.out"; fail "rerun did not skip 3 finished cells"; }
[ "$(grep -cE '^cell [0-9]+ ' "$tmp/run2.out")" = 1 ] || { cat "$tmp/run2.out"; fail "rerun ran more than one cell"; }
grep -qE '^cell 1 failed ' "$tmp/run2.out" || fail "rerun did not redo the failed cell 1"
[ "$(stat -c '%i %y' "$cells_dir/0000.h5")" = "$mtime0" ] || fail "rerun rewrote the finished cell 0"
[ "$(statuses "$out" | tr '\n' ' ')" = "0000:done 0001:failed 0002:diverged 0003:done " ] || fail "after rerun: $(statuses "$out")"

# --cells 0: a done cell is skipped, exit 0; --cells 2: a skipped diverged cell is not a success
"$run" --cells 0 "$toml" > "$tmp/run3.out" 2>&1 || { cat "$tmp/run3.out"; fail "--cells 0 (done, skipped) exited non-zero"; }
grep -q ' 1 already finished, 0 to run ' "$tmp/run3.out" || { cat "$tmp/run3.out"; fail "--cells 0 did not skip"; }
rc=0; "$run" --cells 2 "$toml" > "$tmp/run3.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "--cells 2 (diverged, skipped) exited $rc, expected 1"

# ---------------------------------------------------------------- --restart, --jobs 1: same numbers
rc=0; "$run" --restart --jobs 1 "$toml" > "$tmp/run4.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || { cat "$tmp/run4.out"; fail "--restart exited $rc"; }
grep -q ' 0 already finished, 4 to run (1 at a time' "$tmp/run4.out" || { cat "$tmp/run4.out"; fail "--restart did not redo all 4 cells one at a time"; }
[ "$(grep -cE '^cell [0-9]+ ' "$tmp/run4.out")" = 4 ] || fail "--restart: expected 4 cell lines"
[ "$(stat -c '%i %y' "$cells_dir/0000.h5")" != "$mtime0" ] || fail "--restart did not rewrite cell 0"
tables "$out" "$tmp/jobs1.npz"
"$py" - "$tmp/jobs1.npz" "$tmp/jobs2.npz" <<'EOF' || fail "--jobs 1 and --jobs 2 gave different numbers"
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert sorted(a.files) == sorted(b.files), (sorted(a.files), sorted(b.files))
assert any(k.startswith("0000/train/") for k in a.files) and any("/samples/" in k for k in a.files)
for k in a.files:
    assert a[k].tobytes() == b[k].tobytes(), f"{k} differs"
EOF

# --cells 1: only that cell
rc=0; "$run" --cells 1 "$toml" > "$tmp/run5.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "--cells 1 exited $rc"
[ "$(grep -cE '^cell [0-9]+ ' "$tmp/run5.out")" = 1 ] && grep -qE '^cell 1 failed ' "$tmp/run5.out" \
  || { cat "$tmp/run5.out"; fail "--cells 1 did not run exactly cell 1"; }

# ---------------------------------------------------------------- a grid extended at its end
# Values added at the end of the grid keep the cells already run (their
# configuration is unchanged, only the number of cells is), and so does the
# same experiment run from a copy of its file; a changed key reruns every cell.
ext=$tmp/ext.toml
write_toml "$ext" "$tmp/results/ext.h5" 'plugin = "mlp"' '[train]
steps = 5
[grid]
"experiment.seed" = [0, 1]'
"$run" "$ext" > "$tmp/ext.out" 2>&1 || { cat "$tmp/ext.out"; fail "2-seed grid failed"; }
ext0=$(stat -c '%i %y' "$tmp/results/ext.cells/0000.h5")
sed -i 's/^"experiment.seed" = \[0, 1\]$/"experiment.seed" = [0, 1, 2]/' "$ext"
"$run" "$ext" > "$tmp/ext.out" 2>&1 || { cat "$tmp/ext.out"; fail "3-seed grid failed"; }
grep -q ': 3 cells, 3 selected, 2 already finished, 1 to run ' "$tmp/ext.out" \
  || { cat "$tmp/ext.out"; fail "extending the grid did not keep the 2 finished cells"; }
[ "$(stat -c '%i %y' "$tmp/results/ext.cells/0000.h5")" = "$ext0" ] || fail "extending the grid rewrote cell 0"
[ "$(statuses "$tmp/results/ext.h5" | tr '\n' ' ')" = "0000:done 0001:done 0002:done " ] \
  || fail "extended grid: $(statuses "$tmp/results/ext.h5")"
cp "$ext" "$tmp/ext_copy.toml"
"$run" "$tmp/ext_copy.toml" > "$tmp/ext.out" 2>&1 || { cat "$tmp/ext.out"; fail "copied file failed"; }
grep -q ' 3 already finished, 0 to run ' "$tmp/ext.out" || { cat "$tmp/ext.out"; fail "a copy of the file reran cells"; }
# A cell run before a key existed: its recorded configuration lacks the key.
# Left at its default (which keeps the old behaviour) the key reruns nothing;
# set in the file, it reruns the cells that lack it.
"$py" - "$tmp/results/ext.cells/0001.h5" <<'EOF' || fail "could not drop sample_every from cell 1's config_toml"
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    a = f["cell"].attrs
    lines = a["config_toml"].split("\n")
    assert sum(l.startswith("sample_every = ") for l in lines) == 1, lines
    a["config_toml"] = "\n".join(l for l in lines if not l.startswith("sample_every = "))
# Stamp the checksum header again, as the drift that wrote the file would have.
import zlib
with open(sys.argv[1], "r+b") as f:
    f.seek(512)
    rest = f.read()
    header = b"drift-h5 checksum v1\ncrc32 %08x\nbytes %d\n" % (zlib.crc32(rest), len(rest))
    f.seek(0)
    f.write(header.ljust(512, b"\0"))
EOF
"$run" "$ext" > "$tmp/ext.out" 2>&1 || { cat "$tmp/ext.out"; fail "rerun after dropping a key failed"; }
grep -q ' 3 already finished, 0 to run ' "$tmp/ext.out" || { cat "$tmp/ext.out"; fail "a key left at its default reran a cell that lacks it"; }
sed -i 's/^steps = 5$/steps = 5\nsample_every = 0/' "$ext"
"$run" "$ext" > "$tmp/ext.out" 2>&1 || { cat "$tmp/ext.out"; fail "rerun with sample_every set failed"; }
grep -q ' 2 already finished, 1 to run ' "$tmp/ext.out" || { cat "$tmp/ext.out"; fail "a key set in the file did not rerun the cell that lacks it"; }
sed -i '/^sample_every = 0$/d' "$ext"
sed -i 's/^steps = 5$/steps = 6/' "$ext"
"$run" "$ext" > "$tmp/ext.out" 2>&1 || { cat "$tmp/ext.out"; fail "6-step grid failed"; }
grep -q ' 0 already finished, 3 to run ' "$tmp/ext.out" || { cat "$tmp/ext.out"; fail "a changed key did not rerun the cells"; }

# ---------------------------------------------------------------- bad --cells: nothing written
fresh=$tmp/fresh/none.h5
write_toml "$tmp/none.toml" "$fresh" 'plugin = "mlp"' '[train]
steps = 5
[grid]
"experiment.seed" = [0, 1, 2, 3]'
for spec in 9 0,2-9 x 3-1 -1; do
  rc=0; "$run" --cells "$spec" "$tmp/none.toml" > "$tmp/bad.out" 2> "$tmp/bad.err" || rc=$?
  [ "$rc" = 1 ] || fail "--cells $spec exited $rc, expected 1"
  [ "$(wc -l < "$tmp/bad.err")" = 1 ] || { cat "$tmp/bad.err"; fail "--cells $spec: not a one-line error"; }
  grep -q -- '--cells' "$tmp/bad.err" && grep -q '0-3' "$tmp/bad.err" \
    || fail "--cells $spec: error does not name --cells and the range 0-3: $(cat "$tmp/bad.err")"
  [ ! -s "$tmp/bad.out" ] || fail "--cells $spec printed to stdout: $(cat "$tmp/bad.out")"
  [ ! -e "$tmp/fresh" ] || fail "--cells $spec created $tmp/fresh"
done
grep -q "cell 9 does not exist" < <("$run" --cells 9 "$tmp/none.toml" 2>&1) || fail "--cells 9 does not name cell 9"
grep -q "'x'" < <("$run" --cells 0,x "$tmp/none.toml" 2>&1) || fail "--cells 0,x does not name the part 'x'"
# A bad key: one line naming file and key, nothing written.
sed 's/^n_samples = 64/n_samples = 64\nbogus_key = 1/' "$tmp/none.toml" > "$tmp/badkey.toml"
rc=0; "$run" "$tmp/badkey.toml" > "$tmp/bad.out" 2> "$tmp/bad.err" || rc=$?
[ "$rc" = 1 ] && [ "$(wc -l < "$tmp/bad.err")" = 1 ] && grep -q "badkey.toml" "$tmp/bad.err" && grep -q "bogus_key" "$tmp/bad.err" \
  || fail "bad key: rc $rc, $(cat "$tmp/bad.err")"
[ ! -e "$tmp/fresh" ] || fail "a bad key created $tmp/fresh"

# ---------------------------------------------------------------- kill -9 of a running sweep
# 6 slow cells (~30 steps x 40 ms), 2 at a time.
slow=$tmp/slow.toml
sout=$tmp/results/slow.h5
write_toml "$slow" "$sout" 'plugin = "slow"
sleep_ms = 40' '[train]
steps = 30
n_gen = 32
n_pos = 32
eval_every = 0

[grid]
"experiment.seed" = [0, 1, 2, 3, 4, 5]'
workers() { pgrep -f -- "--cell-worker $1" || true; }

"$run" --jobs 2 "$slow" > "$tmp/kill.out" 2>&1 &
pid=$!; bg+=("$pid")
two_done() { [ "$(grep -cE '^cell [0-9]+ done' "$tmp/kill.out" || true)" -ge 2 ]; }
wait_until "$pid" two_done || { cat "$tmp/kill.out"; fail "slow sweep: ended before 2 cells had finished"; }
[ -n "$(workers "$slow")" ] || fail "slow sweep: no cell running when killed"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
# The cells die with the sweep (PR_SET_PDEATHSIG), leaving no orphan behind.
for _ in $(seq 50); do [ -z "$(workers "$slow")" ] && break; sleep 0.1; done
[ -z "$(workers "$slow")" ] || fail "cell processes outlived the killed sweep: $(workers "$slow")"
n_fin=$(statuses "$sout" | grep -c ':done$') || fail "after kill -9: $sout is not a valid results file"
[ "$n_fin" -ge 2 ] || fail "after kill -9: only $n_fin finished cells in $sout"
[ "$(statuses "$sout" | grep -vc ':done$')" = 0 ] || fail "after kill -9: $(statuses "$sout")"
"$run" --jobs 2 "$slow" > "$tmp/kill2.out" 2>&1 || { cat "$tmp/kill2.out"; fail "the run after kill -9 failed"; }
n_skip=$(sed -nE 's/.* ([0-9]+) already finished.*/\1/p' "$tmp/kill2.out")
[ "$n_skip" -ge 2 ] || { cat "$tmp/kill2.out"; fail "the run after kill -9 skipped $n_skip cells"; }
[ "$(grep -cE '^cell [0-9]+ done' "$tmp/kill2.out")" = $((6 - n_skip)) ] || { cat "$tmp/kill2.out"; fail "the run after kill -9 did not run exactly the rest"; }
[ "$(statuses "$sout" | tr '\n' ' ')" = "0000:done 0001:done 0002:done 0003:done 0004:done 0005:done " ] \
  || fail "after completing: $(statuses "$sout")"
[ -z "$(find "$tmp/results" -name '*.tmp-*')" ] || fail "temporary files left: $(find "$tmp/results" -name '*.tmp-*')"

# ---------------------------------------------------------------- SIGTERM
"$run" --restart --jobs 2 "$slow" > "$tmp/term.out" 2>&1 &
pid=$!; bg+=("$pid")
wait_for_line "$pid" '^cell [0-9]+ done' "$tmp/term.out" || fail "SIGTERM: the sweep ended before a cell had finished"
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" = 143 ] || { cat "$tmp/term.out"; fail "SIGTERM: exit $rc, expected 143"; }
grep -q 'interrupted by signal 15 (SIGTERM)' "$tmp/term.out" || { cat "$tmp/term.out"; fail "SIGTERM: no 'interrupted' line"; }
[ -z "$(workers "$slow")" ] || fail "SIGTERM: cell processes left: $(workers "$slow")"
n_term=$(grep -cE '^cell [0-9]+ done' "$tmp/term.out")
[ "$n_term" -ge 1 ] && [ "$n_term" -lt 6 ] || fail "SIGTERM: $n_term cells finished"
[ "$(statuses "$sout" | grep -vc ':done$')" = 0 ] || fail "SIGTERM left unfinished cells: $(statuses "$sout")"
for i in 0 1 2 3 4 5; do
  [ ! -e "$tmp/results/slow.cells/000$i.h5.stderr" ] || fail "SIGTERM: stderr file of stopped cell $i left"
done

# ---------------------------------------------------------------- a cell another process runs
# Whoever trains a cell holds <cells>/<id>.lock (a Slurm array task, another
# drift-run): a sweep skips that cell, saying so, and runs the others.
flock -o "$tmp/results/slow.cells/0002.lock" sleep 30 &
holder=$!; bg+=("$holder")
for _ in $(seq 50); do
  flock -n "$tmp/results/slow.cells/0002.lock" true 2>/dev/null || break
  sleep 0.1
done
"$run" --restart --cells 1-3 --jobs 2 "$slow" > "$tmp/locked.out" 2>&1 || { cat "$tmp/locked.out"; fail "sweep with a locked cell failed"; }
grep -q "^cell 2 skipped: another drift-run runs it" "$tmp/locked.out" || { cat "$tmp/locked.out"; fail "locked cell 2 not skipped"; }
[ "$(grep -cE '^cell [13] done' "$tmp/locked.out")" = 2 ] || { cat "$tmp/locked.out"; fail "cells 1 and 3 did not run beside the locked one"; }
grep -q "1 run by another drift-run" "$tmp/locked.out" || { cat "$tmp/locked.out"; fail "summary does not count the locked cell"; }
kill "$holder" 2>/dev/null || true

# ---------------------------------------------------------------- a terminal: live progress
if command -v script > /dev/null; then
  TERM=xterm script -qec "'$run' --restart --cells 0 '$slow'" /dev/null > "$tmp/tty.out" 2>&1 \
    || { cat -v "$tmp/tty.out"; fail "the run under script(1) failed"; }
  grep -aqE 'cell 0 +\[train\] step [0-9]+/30  loss [-+0-9.e]+  [0-9.]+ steps/s  ETA [0-9?]' "$tmp/tty.out" \
    || { cat -v "$tmp/tty.out"; fail "no live progress line with step/steps, loss, steps/s and ETA on a terminal"; }
  grep -aqE 'cells: [0-9]+ done, [0-9]+ failed, [0-9]+ running, [0-9]+ left' "$tmp/tty.out" \
    || { cat -v "$tmp/tty.out"; fail "no overall progress line on a terminal"; }
fi
echo "sweep.sh: ok"
