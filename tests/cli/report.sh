#!/usr/bin/env bash
# drift-report on a synthetic results file (tools/make_example_results.py): the
# Markdown table, the failed/diverged marks, the three PNGs, and one-line errors
# for a missing file, a non-HDF5 file and a file without /summary.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}"
py=$DRIFT_SOURCE_DIR/.venv/bin/python
report=$DRIFT_SOURCE_DIR/tools/drift-report
fail() { echo "FAIL: $*"; exit 1; }

[ -x "$py" ] || fail "$py not found: run scripts/setup.sh (it creates .venv with h5py, pandas, matplotlib)"
"$py" -c "import h5py, numpy, pandas, matplotlib" 2>/dev/null \
  || fail "$py lacks h5py/numpy/pandas/matplotlib: run scripts/setup.sh (it installs them)"

tmp=$(mktemp -d /tmp/drift-report-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$py" "$DRIFT_SOURCE_DIR/tools/make_example_results.py" "$tmp/toy.h5" > /dev/null
n_cells=$("$py" -c "import h5py,sys; print(len(h5py.File(sys.argv[1])['summary']))" "$tmp/toy.h5")
[ "$n_cells" = 6 ] || fail "fixture has $n_cells summary rows, expected 6"

# --- the report ---------------------------------------------------------------
rc=0; DRIFT_PYTHON=$py "$report" "$tmp/toy.h5" > "$tmp/out.txt" 2> "$tmp/err.txt" || rc=$?
[ "$rc" = 0 ] || { cat "$tmp/out.txt" "$tmp/err.txt"; fail "drift-report exited $rc"; }
out=$tmp/out.txt

header=$(grep -m1 '^| cell |' "$out") || { cat "$out"; fail "no Markdown header row starting with '| cell |'"; }
for col in status generator.init kernel.temperatures train.n_gen final_mmd final_mmd_floor \
           final_energy final_sliced_w final_m_tau_0.02 final_m_tau_0.05 final_m_tau_0.2 steps_done; do
  grep -q "| $col |" <<< "$header" || fail "header lacks column '$col': $header"
done
ncol=$(awk -F'|' '{print NF}' <<< "$header")
sep=$(grep -A1 -m1 '^| cell |' "$out" | tail -1)
[[ "$sep" =~ ^\|(-+:?\|)+$ ]] || fail "no Markdown separator row under the header: $sep"
[ "$(awk -F'|' '{print NF}' <<< "$sep")" = "$ncol" ] || fail "separator row has another column count"
rows=$(grep -E '^\| [0-9]{4} \|' "$out" || true)
[ "$(grep -c . <<< "$rows")" = 6 ] || { cat "$out"; fail "expected 6 cell rows"; }
for c in 0000 0001 0002 0003 0004 0005; do
  row=$(grep "^| $c |" <<< "$rows") || fail "no row for cell $c"
  [ "$(awk -F'|' '{print NF}' <<< "$row")" = "$ncol" ] || fail "row $c has another column count than the header: $row"
done
grep "^| 0000 |" <<< "$rows" | grep -q '| done | between | \[0.02, 0.05, 0.2\] | 256 | 0.001164 |' \
  || fail "row 0000 lacks its grid values / 4-significant-digit final_mmd: $(grep '^| 0000 |' <<< "$rows")"
grep "^| 0003 |" <<< "$rows" | grep -q '\*\*FAILED\*\*' || fail "failed cell 0003 not marked FAILED"
grep "^| 0003 |" <<< "$rows" | grep -q 'cell process killed by signal 9 (SIGKILL) at step 420: out of memory' \
  || fail "failed cell 0003 does not show the first line of its error"
grep "^| 0005 |" <<< "$rows" | grep -q '\*\*DIVERGED\*\*' || fail "diverged cell 0005 not marked DIVERGED"
grep "^| 0005 |" <<< "$rows" | grep -q 'step 1300' || fail "diverged cell 0005 does not say where it diverged"
if grep -E '^\| 000[0124] \|' <<< "$rows" | grep -qE 'FAILED|DIVERGED'; then fail "a done cell is marked"; fi

for kind in m_tau samples metric; do
  png=$tmp/toy_$kind.png
  grep -qx "wrote $png" "$out" || fail "drift-report did not print 'wrote $png'"
  [ -s "$png" ] || fail "$png missing or empty"
  sig=$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')
  [ "$sig" = 89504e470d0a1a0a ] || fail "$png is not a PNG (signature $sig)"
done

# --out, --metric, --no-plots
DRIFT_PYTHON=$py "$report" "$tmp/toy.h5" --out "$tmp/plots" --metric energy > "$tmp/out2.txt"
[ -s "$tmp/plots/toy_metric.png" ] || fail "--out: $tmp/plots/toy_metric.png not written"
DRIFT_PYTHON=$py "$report" "$tmp/toy.h5" --no-plots > "$tmp/out3.txt"
if grep -q '^wrote ' "$tmp/out3.txt"; then fail "--no-plots wrote plots"; fi
grep -q '^| 0005 |' "$tmp/out3.txt" || fail "--no-plots printed no table"

# --- evaluation variants: [eval] cfg_alphas and ema_rates columns get tables of their own
"$py" - "$tmp/toy.h5" "$tmp/variants.h5" <<'EOF'
import shutil, sys, h5py, numpy as np
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    s = f["summary"][()]
    extra = [("final_mmd/alpha_2.0", 0.5), ("final_mmd/ema_0.9999", 0.25), ("final_energy/ema_0.9999", 0.125)]
    t = np.zeros(len(s), dtype=[(n, s.dtype[n]) for n in s.dtype.names] + [(n, np.float64) for n, _ in extra])
    for n in s.dtype.names:
        t[n] = s[n]
    for n, v in extra:
        t[n] = v + np.arange(len(s))
    del f["summary"]
    f.create_dataset("summary", data=t)
EOF
DRIFT_PYTHON=$py "$report" "$tmp/variants.h5" --no-plots > "$tmp/out4.txt"
header=$(grep -m1 '^| cell |' "$tmp/out4.txt")
grep -q "/alpha_\|/ema_" <<< "$header" && fail "variant columns in the main table: $header"
grep -q "^| cell | .*| alpha | mmd |$" "$tmp/out4.txt" || { cat "$tmp/out4.txt"; fail "no guidance table"; }
grep -q "^| cell | .*| ema | mmd | energy |$" "$tmp/out4.txt" || { cat "$tmp/out4.txt"; fail "no EMA table"; }
grep -qE "^\| 0003 \| .*\| 0.9999 \| 3.25 \| 3.125 \|$" "$tmp/out4.txt" || { cat "$tmp/out4.txt"; fail "EMA table: cell 3's row"; }
grep -qE "^\| 0001 \| .*\| 2.0 \| 1.5 \|$" "$tmp/out4.txt" || { cat "$tmp/out4.txt"; fail "guidance table: cell 1's row"; }

# --- errors: non-zero exit and one line naming the file ---------------------------
expect_error() {  # expect_error WHAT FILE PATTERN [args...]
  local what=$1 file=$2 pattern=$3; shift 3
  local rc=0
  DRIFT_PYTHON=$py "$report" "$file" "$@" > "$tmp/e.out" 2> "$tmp/e.err" || rc=$?
  [ "$rc" != 0 ] || fail "$what: exit status 0"
  [ "$(grep -c . "$tmp/e.err")" = 1 ] || { cat "$tmp/e.err"; fail "$what: stderr is not one line"; }
  grep -qF "$file" "$tmp/e.err" || fail "$what: error does not name $file: $(cat "$tmp/e.err")"
  grep -q "$pattern" "$tmp/e.err" || fail "$what: error does not say '$pattern': $(cat "$tmp/e.err")"
}
expect_error "missing file" "$tmp/does_not_exist.h5" "no such file"
echo "not hdf5" > "$tmp/text.h5"
expect_error "not HDF5" "$tmp/text.h5" "not an HDF5 file"
"$py" -c "import h5py,sys; h5py.File(sys.argv[1], 'w').create_dataset('x', data=[1])" "$tmp/nosummary.h5"
expect_error "no /summary" "$tmp/nosummary.h5" "/summary"
expect_error "unknown metric" "$tmp/toy.h5" "no_such_metric" --metric no_such_metric

echo "PASS: drift-report"
