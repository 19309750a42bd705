#!/usr/bin/env bash
# One cell, data-parallel ([train] nproc, docs/guide/distributed.md), ranks started
# by `drift-run FILE` on this machine, c10d Gloo over loopback:
#  - 2 ranks x B/2 reproduce 1 rank x B: after k steps the generator's
#    parameters (and the logged loss and m_tau) agree within 1e-5 relative, on
#    a toy (MLP generator, identity encoder) and on a tiny class-conditional
#    image cell (DiT, random ResNet encoder with many features, unconditional
#    negatives for guidance); 4 ranks on the toy too;
#  - n_gen not divisible by nproc: the cell fails with a one-line error;
#  - a rank killed (kill -9) mid-run: the cell fails at once naming the rank,
#    no rank is left running, the results file keeps the other cells;
#  - a rank that hangs (SIGSTOP): the cell fails after [train] dist_timeout_s,
#    naming the rank; nothing hangs.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
py=$DRIFT_SOURCE_DIR/.venv/bin/python
run=$DRIFT_BINARY_DIR/bin/drift-run
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$run" ] || fail "$run not built"
"$py" -c "import h5py, numpy" 2>/dev/null || fail "$py lacks h5py/numpy: run scripts/setup.sh"

tmp=$(mktemp -d /tmp/drift-dist-XXXXXX)
bg=()
cleanup() {
  for p in "${bg[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  # A stopped rank must not outlive the test.
  for p in $(ranks_of "$tmp"); do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
# PIDs of cell workers whose experiment file lies under $1 (any rank).
ranks_of() {
  local d
  for d in /proc/[0-9]*; do
    { tr "\0" " " < "$d/cmdline"; } 2>/dev/null | grep -q -- "--cell-worker $1" && echo "${d#/proc/}"
  done
  return 0
}
# The PID of rank $2 of the cell workers under $1.
rank_pid() {
  local p
  for p in $(ranks_of "$1"); do
    { tr "\0" "\n" < "/proc/$p/environ"; } 2>/dev/null | grep -qx "DRIFT_RANK=$2" && { echo "$p"; return 0; }
  done
  return 0
}
trap cleanup EXIT
source "$DRIFT_SOURCE_DIR/tests/cli/lib/wait.sh"

# Max relative difference of the generator parameters (and of the train
# columns loss, m_tau_*) between cell $2 and each cell in $3.. of file $1.
compare() {
  "$py" - "$@" <<'EOF'
import sys, h5py, numpy as np
path, ref, others = sys.argv[1], sys.argv[2], sys.argv[3:]
with h5py.File(path, "r") as f:
    def params(c):
        g = f[f"cells/{c}/generator"]
        return {k: g[k][()].astype(np.float64) for k in g}
    def train(c):
        t = f[f"cells/{c}/train"][()]
        return {n: t[n].astype(np.float64) for n in t.dtype.names if n == "loss" or n.startswith("m_tau")}
    for c in [ref] + others:
        assert f[f"cells/{c}"].attrs["status"] == "done", (c, f[f"cells/{c}"].attrs["status"], f[f"cells/{c}"].attrs.get("error"))
    p0, t0 = params(ref), train(ref)
    for c in others:
        p1, t1 = params(c), train(c)
        assert p0.keys() == p1.keys()
        # Relative difference of all parameters, ||a - b|| / ||a|| (a tensor
        # that starts at zero, like adaLN-zero's, has no scale of its own);
        # of the logged loss and m_tau, per step.
        a = np.concatenate([p0[k].ravel() for k in sorted(p0)])
        b = np.concatenate([p1[k].ravel() for k in sorted(p0)])
        worst = np.linalg.norm(a - b) / np.linalg.norm(a)
        elem = max(np.abs(p0[k] - p1[k]).max() for k in p0)
        worst_t = max(np.abs(t0[k] - t1[k]).max() / max(np.abs(t0[k]).max(), 1e-12) for k in t0)
        print(f"cell {c} vs {ref}: parameters {worst:.2e} (largest element difference {elem:.2e}), "
              f"loss/m_tau {worst_t:.2e} (relative)")
        assert worst < 1e-5 and worst_t < 1e-5, (c, worst, worst_t)
EOF
}

# ---------------------------------------------------------------- toy: 1 vs 2 vs 4 ranks
cat > "$tmp/toy.toml" <<EOF
[experiment]
name = "dist_toy"
output = "$tmp/toy.h5"
threads = 1
[data]
dataset = "eight_gaussians"
[generator]
plugin = "mlp"
[kernel]
plugin = "laplace"
temperatures = [0.02, 0.05, 0.2]
[train]
steps = 8
n_gen = 64
n_pos = 128
lr = 3e-3
warmup = 2
ema = 0.0
eval_every = 0
[eval]
metrics = ["mmd"]
n_samples = 128
[grid]
"train.nproc" = [1, 2, 4]
EOF
"$run" "$tmp/toy.toml" > "$tmp/toy.out" 2>&1 || { cat "$tmp/toy.out"; fail "toy sweep failed"; }
compare "$tmp/toy.h5" 0000 0001 0002 || fail "toy: ranks do not reproduce one process"
# The cost of a cell is every rank's CPU time.
"$py" - "$tmp/toy.h5" <<'EOF' || fail "toy: cpu_time_s"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    c = [f[f"cells/000{i}"].attrs["cpu_time_s"] for i in range(3)]
    assert all(x > 0 for x in c), c
EOF

# ---------------------------------------------------------------- ranks from torchrun's variables
# What torchrun (or any launcher) sets: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT;
# rank 0 writes the cell file, which equals the cell drift-run launched.
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for r in 1 0; do
  RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$run" --cell-worker "$tmp/toy.toml" --cell 1 --cell-out "$tmp/torchrun_cell1.h5" --threads 1 \
    > "$tmp/torchrun$r.out" 2>&1 &
  bg+=("$!")
done
wait "${bg[-1]}" "${bg[-2]}" || { cat "$tmp"/torchrun*.out; fail "torchrun-style ranks failed"; }
"$py" - "$tmp/toy.h5" "$tmp/torchrun_cell1.h5" <<'EOF' || fail "the torchrun-style cell differs from drift-run's"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    x, y = a["cells/0001/generator"], b["cell/generator"]
    assert b["cell"].attrs["status"] == "done"
    for k in x:
        assert np.array_equal(x[k][()], y[k][()]), k
print("torchrun-style ranks: the same cell, bitwise")
EOF

# ---------------------------------------------------------------- tiny image cell: 1 vs 2 ranks
cat > "$tmp/img.toml" <<EOF
[experiment]
name = "dist_img"
output = "$tmp/img.h5"
threads = 1
[data]
dataset = "fashion_mnist"
[generator]
plugin = "dit"
hidden = 32
depth = 1
heads = 2
patch = 8
in_context = 2
style_count = 4
[encoder]
plugin = "random_resnet"
widths = [8, 16]
blocks = [1, 1]
groups = 4
[kernel]
plugin = "laplace"
temperatures = [0.05, 0.2]
[train]
steps = 3
n_classes = 2
n_gen = 4
n_pos = 4
n_unc = 2
lr = 1e-3
warmup = 1
ema = 0.0
eval_every = 0
[eval]
metrics = []
n_samples = 8
[grid]
"train.nproc" = [1, 2]
EOF
"$run" "$tmp/img.toml" > "$tmp/img.out" 2>&1 || { cat "$tmp/img.out"; fail "image sweep failed"; }
compare "$tmp/img.h5" 0000 0001 || fail "image cell: 2 ranks do not reproduce one process"

# ---------------------------------------------------------------- bad batch split
sed -e 's/n_gen = 64/n_gen = 63/' -e 's/"train.nproc" = \[1, 2, 4\]/"train.nproc" = [2]/' \
    -e "s#$tmp/toy.h5#$tmp/odd.h5#" "$tmp/toy.toml" > "$tmp/odd.toml"
if "$run" "$tmp/odd.toml" > "$tmp/odd.out" 2>&1; then fail "n_gen = 63 on 2 ranks: exit 0"; fi
grep -q "n_gen = 63 is not divisible by nproc = 2" "$tmp/odd.out" || { cat "$tmp/odd.out"; fail "no error naming n_gen"; }

# ---------------------------------------------------------------- a rank dies, a rank hangs
# Cell 0 is short and finishes; cells 1 and 2 run long on 2 ranks each.
cat > "$tmp/long.toml" <<EOF
[experiment]
name = "dist_long"
output = "$tmp/long.h5"
threads = 1
[data]
dataset = "eight_gaussians"
[generator]
plugin = "mlp"
[kernel]
plugin = "laplace"
temperatures = [0.05, 0.2]
[train]
steps = 200000
n_gen = 64
n_pos = 64
nproc = 2
dist_timeout_s = 3.0
eval_every = 0
[eval]
metrics = ["mmd"]
n_samples = 64
[grid]
"train.steps" = [20, 200000, 200000]
EOF
wait_rank1() {  # waits until rank 1 of the running cell has trained a little
  local p=""
  rank1_running() { p=$(rank_pid "$tmp/long.toml" 1); [ -n "$p" ] && grep -qE "cell 0 done" "$tmp/long.out"; }
  wait_until "$pid" rank1_running || { cat "$tmp/long.out"; fail "the sweep ended with no rank 1 running"; }
  sleep 1
  echo "$p"
}
"$run" --jobs 1 "$tmp/long.toml" > "$tmp/long.out" 2>&1 &
pid=$!
bg+=("$pid")
r1=$(wait_rank1)
kill -9 "$r1"
t0=$(date +%s)
for _ in $(seq 100); do grep -qE "^cell 1 failed" "$tmp/long.out" && break; sleep 0.1; done
grep -qE "^cell 1 failed.*rank 1 of 2 killed by signal 9" "$tmp/long.out" ||
  { cat "$tmp/long.out"; fail "killed rank: cell 1 did not fail naming rank 1 within 10 s"; }
# Cell 2: its rank 1 stops (SIGSTOP) and never arrives.
# (cell 1's ranks were all stopped before its line was printed: a rank 1 now is cell 2's)
r1=$(wait_rank1)
kill -STOP "$r1"
for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && { cat "$tmp/long.out"; fail "hung rank: the sweep still runs 30 s after SIGSTOP"; }
wait "$pid" && fail "a sweep with failed cells exited 0" || true
grep -qE "^cell 2 failed.*rank 1 \(last at: .*\) did not complete the .* within 3 s" "$tmp/long.out" ||
  { cat "$tmp/long.out"; fail "hung rank: cell 2 did not fail naming rank 1"; }
[ -z "$(ranks_of "$tmp/long.toml")" ] || fail "ranks left running: $(ranks_of "$tmp/long.toml")"
"$py" - "$tmp/long.h5" <<'EOF' || fail "results file after rank failures"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    s = {k: f["cells"][k].attrs["status"] for k in f["cells"]}
    assert s == {"0000": "done", "0001": "failed", "0002": "failed"}, s
    assert "rank 1" in f["cells/0001"].attrs["error"]
EOF
grep -E "^cell [12] failed" "$tmp/long.out"
echo "distributed: ok"
