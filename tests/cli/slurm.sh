#!/usr/bin/env bash
# Sweeps on Slurm (docs/guide/running.md §6, sweep/slurm.hpp), against a
# real one-node cluster that this test starts: Debian's munged, slurmctld and
# slurmd (tests/slurm/cluster.sh). Where they cannot start (not installed, not
# root) the test says why and exits 77 (ctest: skipped, never passed).
#  - --slurm --dry-run prints the array and merge scripts (array spec with the
#    concurrency limit, partition/time/CPUs/memory/extra options) and submits
#    nothing;
#  - a 4-cell toy sweep submitted, waited for, merged by the merge job: every
#    cell equals the same sweep run locally, bitwise (threads = 1);
#    --status shows done cells with their job ids; submitting again submits
#    nothing;
#  - one array task killed (SIGKILL) mid-run: --status says pending (or paused), the
#    resubmission runs that cell only (the others' files untouched) and the
#    merged file equals the local run;
#  - one array task stopped by `scancel --full --signal=TERM` mid-cell (what
#    preemption and the time limit send): its cell pauses with a checkpoint,
#    --status says so, the resubmitted task resumes it, and it equals the
#    local run;
#  - a data-parallel cell ([train] nproc = 2) runs under srun and equals the
#    local 2-rank run.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
py=$DRIFT_SOURCE_DIR/.venv/bin/python
run=$DRIFT_BINARY_DIR/bin/drift-run
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$run" ] || fail "$run not built"
"$py" -c "import h5py, numpy" 2>/dev/null || fail "$py lacks h5py/numpy: run scripts/setup.sh"

tmp=$(mktemp -d /tmp/drift-slurm-XXXXXX)
# shellcheck source=../slurm/cluster.sh
source "$DRIFT_SOURCE_DIR/tests/slurm/cluster.sh"
cleanup() {
  slurm_cluster_stop "$tmp/cluster"
  rm -rf "$tmp"
}
trap cleanup EXIT
if ! slurm_cluster_start "$tmp/cluster" 2> "$tmp/why"; then
  echo "SKIPPED: cannot start a Slurm cluster here: $(cat "$tmp/why")"
  exit 77
fi
echo "slurm cluster up: $(sinfo -h -o '%P %D nodes, %c CPUs, %T')"

# $1: file, $2: output, $3: [train] extra lines, $4: [grid] lines
write_toml() {
  cat > "$1" <<EOF
[experiment]
name = "$(basename "$1" .toml)"
output = "$2"
threads = 1
[data]
dataset = "eight_gaussians"
[generator]
plugin = "mlp"
[kernel]
plugin = "laplace"
temperatures = [0.05, 0.2]
[train]
n_gen = 64
n_pos = 64
eval_every = 0
$3
[eval]
metrics = ["mmd"]
n_samples = 64
[slurm]
max_running = 2
time = "10:00"
[grid]
$4
EOF
}
# Waits (at most $1 s) until Slurm has no job of ours left.
wait_idle() {
  for _ in $(seq $(($1 * 5))); do
    [ -z "$(squeue -h -o %i)" ] && return 0
    sleep 0.2
  done
  squeue; fail "Slurm jobs still there after $1 s"
}
# Waits (at most $2 s) until the cell log $1 reports its first checkpoint: the
# cell is training (a signal before that stops it before step 0).
wait_training() {
  for _ in $(seq $(($2 * 5))); do
    grep -qs "checkpoint after step" "$1" && return 0
    sleep 0.2
  done
  cat "$1" 2>/dev/null; fail "$1: no checkpoint within $2 s"
}
# Cells of $1 and $2 are equal: status, train table (without seconds), eval,
# samples, generator state, bitwise.
same_cells() {
  "$py" - "$@" <<'EOF'
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:3])
cells = sorted(a["cells"])
assert cells == sorted(b["cells"]), (cells, sorted(b["cells"]))
for c in cells:
    x, y = a["cells"][c], b["cells"][c]
    assert x.attrs["status"] == y.attrs["status"] == "done", (c, x.attrs["status"], y.attrs["status"])
    tx, ty = x["train"][()], y["train"][()]
    for n in tx.dtype.names:
        if n != "seconds":
            assert np.array_equal(tx[n], ty[n]), (c, n)
    for k in x["generator"]:
        assert np.array_equal(x["generator"][k][()], y["generator"][k][()]), (c, k)
    for s in x["samples"]:
        assert np.array_equal(x["samples"][s][()], y["samples"][s][()]), (c, s)
print(f"{len(cells)} cells equal, bitwise")
EOF
}

# ---------------------------------------------------------------- dry run
write_toml "$tmp/toy4.toml" "$tmp/toy4.h5" "steps = 60" '"experiment.seed" = [0, 1, 2, 3]'
"$run" --slurm --dry-run --partition drift --mem 1G --sbatch-option=--comment=drift-test "$tmp/toy4.toml" \
  > "$tmp/dry.out" 2>&1 || { cat "$tmp/dry.out"; fail "--slurm --dry-run failed"; }
for want in "#SBATCH --array=0-3%2" "#SBATCH --partition=drift" "#SBATCH --time=10:00" "#SBATCH --mem=1G" \
            "#SBATCH --cpus-per-task=1" "#SBATCH --comment=drift-test" "--array-task" "--merge" \
            "--dependency=afterany:"; do
  grep -q -- "$want" "$tmp/dry.out" || { cat "$tmp/dry.out"; fail "dry run lacks '$want'"; }
done
[ -z "$(squeue -h -o %i)" ] || fail "--dry-run submitted jobs"
[ ! -e "$tmp/toy4.cells/slurm/submissions.tsv" ] || fail "--dry-run recorded a submission"

# ---------------------------------------------------------------- 4 cells on Slurm == locally
sed "s#$tmp/toy4.h5#$tmp/local4.h5#" "$tmp/toy4.toml" > "$tmp/local4.toml"
sed -i 's/^name = "toy4"/name = "local4"/' "$tmp/local4.toml"
"$run" "$tmp/local4.toml" > "$tmp/local4.out" 2>&1 || { cat "$tmp/local4.out"; fail "local sweep failed"; }
(cd "$tmp" && "$run" --slurm toy4.toml) > "$tmp/sub1.out" 2>&1 || { cat "$tmp/sub1.out"; fail "--slurm failed"; }
grep -q "4 to submit" "$tmp/sub1.out" || { cat "$tmp/sub1.out"; fail "not 4 cells submitted"; }
grep -qE "submitted array job [0-9]+ \(4 tasks" "$tmp/sub1.out" || { cat "$tmp/sub1.out"; fail "no array job"; }
wait_idle 120
(cd "$tmp" && "$run" --status toy4.toml) > "$tmp/status1.out"
grep -q "4 cells: 4 done" "$tmp/status1.out" || { cat "$tmp/status1.out" "$tmp"/toy4.cells/slurm/*.out; fail "--status: not 4 done"; }
grep -qE "^0 +done +[0-9]+_0 " "$tmp/status1.out" || { cat "$tmp/status1.out"; fail "--status: no job id"; }
same_cells "$tmp/toy4.h5" "$tmp/local4.h5" || fail "the Slurm sweep differs from the local one"
(cd "$tmp" && "$run" --slurm toy4.toml) > "$tmp/sub2.out" 2>&1 || { cat "$tmp/sub2.out"; fail "second --slurm failed"; }
grep -q "4 finished, .* 0 to submit" "$tmp/sub2.out" || { cat "$tmp/sub2.out"; fail "resubmitting a finished sweep submitted cells"; }
# --restart trains the selected finished cells again (its tasks must not skip
# them as finished), leaves the others, and gives the same results.
keep_before=$(cd "$tmp/toy4.cells" && stat -c '%n %i %Y' 0000.h5 0002.h5)
redo_before=$(cd "$tmp/toy4.cells" && stat -c '%n %i %.9Y' 0001.h5 0003.h5)
(cd "$tmp" && "$run" --slurm --restart --cells 1,3 toy4.toml) > "$tmp/sub3.out" 2>&1 || { cat "$tmp/sub3.out"; fail "--slurm --restart failed"; }
grep -qE "submitted array job [0-9]+ \(2 tasks, cells 1,3\)" "$tmp/sub3.out" || { cat "$tmp/sub3.out"; fail "--restart did not submit cells 1 and 3"; }
array=$(sed -nE 's/.*submitted array job ([0-9]+).*/\1/p' "$tmp/sub3.out")
wait_idle 120
for t in 0 1; do
  grep -qE "cell [13] done" "$tmp/toy4.cells/slurm/${array}_$t.out" ||
    { cat "$tmp/toy4.cells/slurm/${array}_$t.out"; fail "--slurm --restart: task $t did not train its cell again"; }
done
[ "$(cd "$tmp/toy4.cells" && stat -c '%n %i %.9Y' 0001.h5 0003.h5)" != "$redo_before" ] || fail "--slurm --restart: cells 1 and 3 not rewritten"
[ "$(cd "$tmp/toy4.cells" && stat -c '%n %i %Y' 0000.h5 0002.h5)" = "$keep_before" ] || fail "--slurm --restart: unselected cells rewritten"
same_cells "$tmp/toy4.h5" "$tmp/local4.h5" || fail "after --slurm --restart the sweep differs from the local one"

# ---------------------------------------------------------------- a killed task
# Cell 1 runs long enough to be killed mid-run; the others are quick.
write_toml "$tmp/kill.toml" "$tmp/kill.h5" "checkpoint_every = 100" '"train.steps" = [60, 6000, 60, 60]'
sed "s#$tmp/kill.h5#$tmp/killref.h5#; s/^name = \"kill\"/name = \"killref\"/" "$tmp/kill.toml" > "$tmp/killref.toml"
(cd "$tmp" && "$run" --slurm kill.toml) > "$tmp/ksub1.out" 2>&1 || { cat "$tmp/ksub1.out"; fail "--slurm (kill) failed"; }
array=$(sed -nE 's/.*submitted array job ([0-9]+).*/\1/p' "$tmp/ksub1.out")
for _ in $(seq 300); do
  [ "$(squeue -h -r -j "${array}_1" -o %T 2>/dev/null)" = RUNNING ] && [ -s "$tmp/kill.cells/slurm/${array}_1.out" ] && break
  sleep 0.2
done
[ "$(squeue -h -r -j "${array}_1" -o %T)" = RUNNING ] || { squeue; fail "task ${array}_1 never ran"; }
wait_training "$tmp/kill.cells/0001.h5.stderr" 60
scancel --signal=KILL "${array}_1"
wait_idle 120
(cd "$tmp" && "$run" --status kill.toml) > "$tmp/kstatus.out"
# The task's drift-run dies at once; its cell process (in a process group of
# its own) gets SIGTERM as its parent dies and may still write a checkpoint:
# pending, or paused.
grep -qE "^1 +(pending|paused) +${array}_1" "$tmp/kstatus.out" || { cat "$tmp/kstatus.out"; fail "killed cell neither pending nor paused"; }
grep -qE "3 done, 1 (pending|paused)" "$tmp/kstatus.out" || { cat "$tmp/kstatus.out"; fail "--status after the kill"; }
before=$(cd "$tmp/kill.cells" && stat -c '%n %i %Y' 0000.h5 0002.h5 0003.h5)
(cd "$tmp" && "$run" --slurm kill.toml) > "$tmp/ksub2.out" 2>&1 || { cat "$tmp/ksub2.out"; fail "resubmission failed"; }
grep -qE "submitted array job [0-9]+ \(1 tasks, cells 1\)" "$tmp/ksub2.out" || { cat "$tmp/ksub2.out"; fail "the resubmission did not submit cell 1 alone"; }
wait_idle 300
after=$(cd "$tmp/kill.cells" && stat -c '%n %i %Y' 0000.h5 0002.h5 0003.h5)
[ "$before" = "$after" ] || fail "finished cells were rewritten: $before / $after"
"$run" "$tmp/killref.toml" > "$tmp/killref.out" 2>&1 || { cat "$tmp/killref.out"; fail "local reference failed"; }
same_cells "$tmp/kill.h5" "$tmp/killref.h5" || fail "after the resubmission the sweep differs from the local one"

# ---------------------------------------------------------------- a task stopped with SIGTERM resumes
# What preemption and the time limit do (SIGTERM to the task): the cell writes
# its checkpoint and stops; the resubmitted task resumes it from there, and
# the cell ends equal to an uninterrupted local run.
write_toml "$tmp/term.toml" "$tmp/term.h5" "checkpoint_every = 100" '"train.steps" = [20000]'
sed "s#$tmp/term.h5#$tmp/termref.h5#; s/^name = \"term\"/name = \"termref\"/" "$tmp/term.toml" > "$tmp/termref.toml"
(cd "$tmp" && "$run" --slurm term.toml) > "$tmp/tsub1.out" 2>&1 || { cat "$tmp/tsub1.out"; fail "--slurm (term) failed"; }
grep -q "#SBATCH --signal=B:TERM@120" "$tmp"/term.cells/slurm/array-*.sh || fail "the array script does not ask for SIGTERM before the time limit"
array=$(sed -nE 's/.*submitted array job ([0-9]+).*/\1/p' "$tmp/tsub1.out")
for _ in $(seq 300); do
  [ "$(squeue -h -r -j "${array}_0" -o %T 2>/dev/null)" = RUNNING ] && [ -s "$tmp/term.cells/slurm/${array}_0.out" ] && break
  sleep 0.2
done
wait_training "$tmp/term.cells/0000.h5.stderr" 60
scancel --full --signal=TERM "${array}_0"
wait_idle 180
grep -qE "cell 0 paused after step [0-9]+ of 20000" "$tmp/term.cells/slurm/${array}_0.out" ||
  { cat "$tmp/term.cells/slurm/${array}_0.out"; fail "the stopped task did not pause its cell"; }
(cd "$tmp" && "$run" --status term.toml) > "$tmp/tstatus.out"
grep -qE "^0 +paused +${array}_0 .*paused at step [0-9]+ of 20000" "$tmp/tstatus.out" || { cat "$tmp/tstatus.out"; fail "--status: the stopped cell is not paused"; }
step=$(sed -nE 's/.*paused at step ([0-9]+).*/\1/p' "$tmp/tstatus.out")
(cd "$tmp" && "$run" --slurm term.toml) > "$tmp/tsub2.out" 2>&1 || { cat "$tmp/tsub2.out"; fail "resubmission (term) failed"; }
array2=$(sed -nE 's/.*submitted array job ([0-9]+).*/\1/p' "$tmp/tsub2.out")
wait_idle 300
grep -q "cell 0 started (resuming after step $step)" "$tmp/term.cells/slurm/${array2}_0.out" ||
  { cat "$tmp/term.cells/slurm/${array2}_0.out"; fail "the resubmitted task did not resume after step $step"; }
"$run" "$tmp/termref.toml" > "$tmp/termref.out" 2>&1 || { cat "$tmp/termref.out"; fail "local reference (term) failed"; }
same_cells "$tmp/term.h5" "$tmp/termref.h5" || fail "the cell resumed on Slurm differs from the local run"
echo "SIGTERM to a task after step $step: resumed, equal to the local run"

# ---------------------------------------------------------------- data-parallel cell under srun
write_toml "$tmp/dp.toml" "$tmp/dp.h5" $'steps = 30\nnproc = 2' '"experiment.seed" = [5]'
sed "s#$tmp/dp.h5#$tmp/dpref.h5#; s/^name = \"dp\"/name = \"dpref\"/" "$tmp/dp.toml" > "$tmp/dpref.toml"
(cd "$tmp" && "$run" --slurm dp.toml) > "$tmp/dsub.out" 2>&1 || { cat "$tmp/dsub.out"; fail "--slurm (nproc 2) failed"; }
grep -q "#SBATCH --ntasks=2" "$tmp"/dp.cells/slurm/array-*.sh || fail "the array of an nproc = 2 cell does not ask for 2 tasks"
wait_idle 120
"$run" "$tmp/dpref.toml" > "$tmp/dpref.out" 2>&1 || { cat "$tmp/dpref.out"; fail "local 2-rank run failed"; }
same_cells "$tmp/dp.h5" "$tmp/dpref.h5" || { cat "$tmp"/dp.cells/slurm/*.out; fail "the srun-launched cell differs from the local 2-rank run"; }
echo "slurm: ok"
