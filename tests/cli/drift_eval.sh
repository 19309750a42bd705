#!/usr/bin/env bash
# drift-eval on small constructed files: a plain samples file (table, --json,
# the input left untouched), a drift-run style results file (--cell, --step,
# --alpha), drift-report's image grids for it, and one-line errors with exit
# status 1 for bad inputs.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
py=$DRIFT_SOURCE_DIR/.venv/bin/python
eval_bin=$DRIFT_BINARY_DIR/bin/drift-eval
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$eval_bin" ] || fail "$eval_bin not built"
[ -x "$py" ] || fail "$py not found: run scripts/setup.sh"
export DRIFT_NUM_THREADS=${DRIFT_NUM_THREADS:-2}

tmp=$(mktemp -d /tmp/drift-eval-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# --- fixtures -------------------------------------------------------------------
"$py" - "$tmp" <<'EOF'
import sys, h5py, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(0)
n = 200
noise = rng.uniform(-1, 1, (n, 1, 32, 32)).astype(np.float32)
labels = (np.arange(n) % 10).astype(np.int64)
with h5py.File(f"{d}/plain.h5", "w") as f:
    f["samples"] = noise
    f["labels"] = labels
with h5py.File(f"{d}/nolabels.h5", "w") as f:
    f["samples"] = (rng.uniform(0, 255, (n, 1, 32, 32))).astype(np.uint8)
with h5py.File(f"{d}/wrongshape.h5", "w") as f:
    f["samples"] = noise.reshape(n, 32, 32)
with h5py.File(f"{d}/badlabels.h5", "w") as f:
    f["samples"] = noise
    f["labels"] = labels + 5
with h5py.File(f"{d}/empty.h5", "w") as f:
    f["other"] = np.zeros(3)
# A results file in the layout of schemas/results.md: two cells, samples at
# steps 10 and 20, guidance samples at alpha 1.5, cell 0 also the samples of
# a further weight average (ema 0.999) and its configuration ([train] ema =
# 0.995, the default samples' average); /summary for drift-report.
with h5py.File(f"{d}/run.h5", "w") as f:
    for c in range(2):
        g = f.create_group(f"cells/{c:04d}")
        g.attrs["status"] = "done"
        for step, scale in ((10, 1.0), (20, 0.5)):
            ds = g.create_dataset(f"samples/{step:010d}", data=noise * scale)
            ds.attrs["step"] = step
            g[f"samples/{step:010d}_labels"] = labels
        a = g.create_dataset(f"alpha_samples/1.5/{20:010d}", data=noise * 0.25)
        a.attrs["step"] = 20
        g[f"alpha_samples/1.5/{20:010d}_labels"] = labels
        if c == 0:
            g.attrs["config_toml"] = "[train]\nsteps = 20\nema = 0.995\n"
            e = g.create_dataset(f"ema_samples/0.999/{20:010d}", data=noise * 0.75)
            e.attrs["step"] = 20
            g[f"ema_samples/0.999/{20:010d}_labels"] = labels
    st = h5py.string_dtype()
    cols = [("cell", "<i8"), ("status", st), ("final_fid", "<f8"), ("final_fid_floor", "<f8"),
            ("final_accuracy_3", "<f8"), ("final_fid/alpha_1.5", "<f8"), ("final_fid/alpha_2.0", "<f8")]
    summary = np.array([(0, "done", 12.5, 1.5, 0.75, 11.25, 10.125),
                        (1, "done", 22.5, 1.5, 0.5, 21.25, 20.125)], dtype=cols)
    f["summary"] = summary
EOF

# --- a plain samples file ---------------------------------------------------------
sum_before=$(sha256sum "$tmp/plain.h5" | cut -d' ' -f1)
rc=0; "$eval_bin" "$tmp/plain.h5" --json "$tmp/m.json" > "$tmp/out.txt" 2> "$tmp/err.txt" || rc=$?
[ "$rc" = 0 ] || { cat "$tmp/out.txt" "$tmp/err.txt"; fail "drift-eval exited $rc"; }
for m in fid precision recall accuracy accuracy_0 accuracy_9 is; do
  grep -qE "^$m +[0-9.e+-]+" "$tmp/out.txt" || { cat "$tmp/out.txt"; fail "no row for '$m'"; }
done
grep -qE "^fid +[0-9.e+-]+ +[0-9.e+-]+$" "$tmp/out.txt" || fail "the fid row lacks its floor"
[ "$(sha256sum "$tmp/plain.h5" | cut -d' ' -f1)" = "$sum_before" ] || fail "the input file changed"
"$py" - "$tmp/m.json" <<'EOF' || fail "--json output is wrong"
import json, sys
j = json.load(open(sys.argv[1]))
m = j["metrics"]
assert j["n"] == 200 and j["labels"] is True and j["dataset"] == "samples", j
for k in ("fid", "fid_floor", "precision", "precision_floor", "recall", "accuracy", "accuracy_floor", "is", "is_floor"):
    assert k in m and m[k] is not None, k
# uniform noise is far from Fashion-MNIST; real training images are not
assert m["fid"] > 10 * m["fid_floor"], m
assert m["precision"] < m["precision_floor"], m
assert 0.85 <= m["accuracy_floor"] <= 1.0, m
assert 1.0 <= m["is"] <= 10.0 and 1.0 <= m["is_floor"] <= 10.0, m
EOF

# uint8 samples without labels: no accuracy row
"$eval_bin" "$tmp/nolabels.h5" --metrics fid,accuracy,is > "$tmp/out.txt" || fail "uint8 samples without labels"
grep -q "^fid " "$tmp/out.txt" || fail "no fid row for uint8 samples"
if grep -q "^accuracy" "$tmp/out.txt"; then fail "accuracy reported without labels"; fi

# --- a results file -----------------------------------------------------------------
"$eval_bin" "$tmp/run.h5" --cell 1 --json "$tmp/r.json" > "$tmp/out.txt" || fail "--cell 1"
grep -q "cells/0001/samples/0000000020" "$tmp/out.txt" || fail "--cell 1 did not take the last step: $(head -1 "$tmp/out.txt")"
"$eval_bin" "$tmp/run.h5" --cell 0001 --step 10 > "$tmp/out.txt" || fail "--step 10"
grep -q "cells/0001/samples/0000000010" "$tmp/out.txt" || fail "--step 10 not used: $(head -1 "$tmp/out.txt")"
"$eval_bin" "$tmp/run.h5" --cell 0 --alpha 1.5 --metrics fid > "$tmp/out.txt" || fail "--alpha 1.5"
grep -q "cells/0000/alpha_samples/1.5/0000000020" "$tmp/out.txt" || fail "--alpha 1.5 not used"
# An alpha is a number: 1.50 names the samples recorded as 1.5; 1 (the
# generator's default) names the plain samples.
"$eval_bin" "$tmp/run.h5" --cell 0 --alpha 1.50 --metrics fid > "$tmp/out.txt" || fail "--alpha 1.50"
grep -q "cells/0000/alpha_samples/1.5/0000000020" "$tmp/out.txt" || fail "--alpha 1.50 did not find alpha_samples/1.5"
"$eval_bin" "$tmp/run.h5" --cell 0 --alpha 1 --metrics fid > "$tmp/out.txt" || fail "--alpha 1"
grep -q "cells/0000/samples/0000000020" "$tmp/out.txt" || fail "--alpha 1 did not take the default samples: $(head -1 "$tmp/out.txt")"
# --ema R: the samples of that further weight average, a rate compared as a number.
"$eval_bin" "$tmp/run.h5" --cell 0 --ema 0.9990 --metrics fid > "$tmp/out.txt" || fail "--ema 0.9990"
grep -q "cells/0000/ema_samples/0.999/0000000020" "$tmp/out.txt" || fail "--ema 0.9990 did not find ema_samples/0.999: $(head -1 "$tmp/out.txt")"
# The cell's own [train] ema names its default samples.
"$eval_bin" "$tmp/run.h5" --cell 0 --ema 0.995 --metrics fid > "$tmp/out.txt" || fail "--ema 0.995"
grep -q "cells/0000/samples/0000000020" "$tmp/out.txt" || fail "--ema 0.995 ([train] ema) did not take the default samples: $(head -1 "$tmp/out.txt")"
rc=0; "$eval_bin" "$tmp/run.h5" --cell 0 --ema 0.999 --alpha 1.5 > /dev/null 2> "$tmp/err.txt" || rc=$?
[ "$rc" = 2 ] && grep -q "^drift-eval: --alpha and --ema" "$tmp/err.txt" || fail "--alpha with --ema: exit $rc, $(cat "$tmp/err.txt")"

# --- drift-report: one grid per cell, per alpha and per further EMA --------------------
DRIFT_PYTHON=$py "$DRIFT_SOURCE_DIR/tools/drift-report" "$tmp/run.h5" --out "$tmp/plots" > "$tmp/rep.txt" 2>&1 \
  || { cat "$tmp/rep.txt"; fail "drift-report on image results"; }
grep -q "^| cell | status | final_fid | final_fid_floor |" "$tmp/rep.txt" || { cat "$tmp/rep.txt"; fail "no main table"; }
if grep "^| cell | status" "$tmp/rep.txt" | grep -qE "accuracy_3|alpha"; then fail "per-class / per-alpha columns in the main table"; fi
grep -q "^| cell | alpha | fid |" "$tmp/rep.txt" || { cat "$tmp/rep.txt"; fail "no guidance table"; }
grep -q "^| 0001 | 2.0 | 20.12 |" "$tmp/rep.txt" || { cat "$tmp/rep.txt"; fail "guidance table lacks cell 1 at alpha 2.0"; }
for p in run_cell0000_grid run_cell0001_grid run_cell0000_grid_alpha1.5 run_cell0000_grid_ema0.999; do
  png=$tmp/plots/$p.png
  grep -qx "wrote $png" "$tmp/rep.txt" || { cat "$tmp/rep.txt"; fail "drift-report did not write $png"; }
  [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$png is not a PNG"
done
"$py" - "$tmp/plots/run_cell0000_grid.png" <<'EOF' || fail "grid is not 10 x 10 images of 32 px"
import sys, matplotlib.image as mpimg
h, w = mpimg.imread(sys.argv[1]).shape[:2]
assert (h, w) == (10 * 34 - 2, 10 * 34 - 2), (h, w)
EOF

# --- bad inputs: one line, exit 1 ----------------------------------------------------
expect_error() {  # expect_error PATTERN ARGS...
  local pat=$1; shift
  local rc=0
  "$eval_bin" "$@" > "$tmp/out.txt" 2> "$tmp/err.txt" || rc=$?
  [ "$rc" = 1 ] || { cat "$tmp/err.txt"; fail "drift-eval $* exited $rc, expected 1"; }
  [ "$(wc -l < "$tmp/err.txt")" = 1 ] || { cat "$tmp/err.txt"; fail "drift-eval $*: expected one line on stderr"; }
  grep -q -- "$pat" "$tmp/err.txt" || fail "drift-eval $*: error lacks '$pat': $(cat "$tmp/err.txt")"
}
expect_error "$tmp/missing.h5" "$tmp/missing.h5"
expect_error "wrongshape.h5: dataset 'samples': expected images \[N >= 2, 1, 32, 32\]" "$tmp/wrongshape.h5"
expect_error "badlabels.h5: dataset 'labels': expected integer labels \[200\] in \[0, 10)" "$tmp/badlabels.h5"
expect_error "empty.h5: no dataset 'samples' \[N, 1, 32, 32\]" "$tmp/empty.h5"
expect_error "run.h5: 2 cells (0000, 0001): choose one with --cell ID" "$tmp/run.h5"
expect_error "run.h5: no cell '7'" "$tmp/run.h5" --cell 7
expect_error "run.h5: cells/0000 has no samples at alpha 2.0 (recorded: 1, 1.5; others need \[eval\] cfg_alphas)" "$tmp/run.h5" --cell 0 --alpha 2.0
expect_error "--alpha 'two': expected a number > 0" "$tmp/run.h5" --cell 0 --alpha two
expect_error "run.h5: cells/0000 has no samples with ema 0.5 (recorded: 0.995, 0.999; others need \[eval\] ema_rates)" "$tmp/run.h5" --cell 0 --ema 0.5
expect_error "run.h5: cells/0001 has no samples with ema 0.999 (recorded: none; others need \[eval\] ema_rates)" "$tmp/run.h5" --cell 1 --ema 0.999
expect_error "--ema '1.5': expected a decay rate in (0, 1)" "$tmp/run.h5" --cell 0 --ema 1.5
expect_error "plain.h5: --step/--alpha/--ema need a drift-run results file" "$tmp/plain.h5" --ema 0.999
expect_error "is the input file" "$tmp/plain.h5" --json "$tmp/plain.h5"
[ "$(sha256sum "$tmp/plain.h5" | cut -d' ' -f1)" = "$sum_before" ] || fail "--json onto the input changed it"
echo "not hdf5" > "$tmp/text.h5"
expect_error "text.h5" "$tmp/text.h5"
expect_error "evaluator: .*nope.pt" "$tmp/plain.h5" --evaluator "$tmp/nope.pt"
rc=0; "$eval_bin" "$tmp/plain.h5" --metrics fid,bogus > /dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "an unknown metric is a usage error (exit 2), got $rc"
echo "cli.drift_eval: OK"
