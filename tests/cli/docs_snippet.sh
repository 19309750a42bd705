#!/usr/bin/env bash
# Runs docs/read_results_example.py (the main snippet of docs/guide/reading_results.md)
# and the doc's smaller recipes on a synthetic results file, with the system
# python3 when it has h5py and pandas (python3-h5py, python3-pandas), else with
# the project venv; checks the doc's copy of the snippet matches the file and
# that the script printed the expected rows and columns.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}"
venv=$DRIFT_SOURCE_DIR/.venv/bin/python
doc=$DRIFT_SOURCE_DIR/docs/guide/reading_results.md
script=$DRIFT_SOURCE_DIR/docs/read_results_example.py
fail() { echo "FAIL: $*"; exit 1; }

if command -v python3 > /dev/null && python3 -c "import h5py, pandas" 2> /dev/null; then
  py=$(command -v python3)
elif [ -x "$venv" ] && "$venv" -c "import h5py, pandas" 2> /dev/null; then
  py=$venv
else
  fail "neither python3 nor $venv has h5py and pandas: run scripts/setup.sh (it installs them in .venv)"
fi
# The fixture writer needs only h5py and numpy; prefer the venv, which has them.
maker=$venv; [ -x "$maker" ] && "$maker" -c "import h5py, numpy" 2> /dev/null || maker=$py
echo "running the snippet with $py"

tmp=$(mktemp -d /tmp/drift-docs-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$maker" "$DRIFT_SOURCE_DIR/tools/make_example_results.py" "$tmp/toy.h5" > /dev/null

# The doc shows the script verbatim (the ```python block after the snippet marker).
awk '/<!-- snippet: docs\/read_results_example.py/ {on=1; next}
     on==1 && /^```python$/ {on=2; next}
     on==2 && /^```$/ {exit}
     on==2 {print}' "$doc" > "$tmp/from_doc.py"
[ -s "$tmp/from_doc.py" ] || fail "no snippet block after the marker in $doc"
diff -u "$script" "$tmp/from_doc.py" > "$tmp/diff.txt" \
  || { cat "$tmp/diff.txt"; fail "docs/guide/reading_results.md's snippet differs from docs/read_results_example.py"; }

plot_args=()
if "$py" -c "import matplotlib" 2> /dev/null; then plot_args=("$tmp/m_tau.png"); fi
rc=0; "$py" "$script" "$tmp/toy.h5" "${plot_args[@]}" > "$tmp/out.txt" 2> "$tmp/err.txt" || rc=$?
[ "$rc" = 0 ] || { cat "$tmp/out.txt" "$tmp/err.txt"; fail "snippet exited $rc"; }
out=$tmp/out.txt
expect() { grep -qE "$1" "$out" || { cat "$out"; fail "snippet output lacks /$1/"; }; }
expect '^experiment: toy \(6 cells\)$'
expect '^grid keys: generator\.init, kernel\.temperatures, train\.n_gen$'
expect '^summary: 6 rows x 16 columns$'
expect '^columns: cell, status, generator\.init, kernel\.temperatures, train\.n_gen, final_mmd, final_mmd_floor, .*final_m_tau_0\.05, final_m_tau_0\.2, steps_done, wall_time_s$'
expect '^ *cell +status +generator\.init +kernel\.temperatures +train\.n_gen +final_mmd$'
expect '^ *0 +done +between +\[0\.02, 0\.05, 0\.2\] +256 +0\.00116'
expect '^ *3 +failed +between +\[0\.05\] +256 +NaN$'
expect '^ *5 +diverged +collapsed +\[0\.05\] +256 +0\.00269'
expect '^done cells: 0000 0001 0002 0004$'
expect '^cell 0003 failed: cell process killed by signal 9 \(SIGKILL\) at step 420: out of memory$'
expect '^cell 0005 diverged: '
expect '^cells/0000/train: 100 rows; m_tau columns: m_tau_0\.02, m_tau_0\.05, m_tau_0\.2$'
expect '^ *step +m_tau_0\.02 +m_tau_0\.05 +m_tau_0\.2$'
expect '^ *2000 +0\.0189'
expect '^cells/0000/eval: 4 rows$'
expect '^ *step +mmd +mmd_floor$'
expect '^cells/0000/samples: steps \[0, 200, 1000, 2000\]; step 2000: shape \(512, 2\), dtype float32$'
expect '^cells/0000/real_samples: shape \(512, 2\); '
[ "$(grep -cE '^ *[0-9] +(done|failed|diverged) ' "$out")" = 6 ] || { cat "$out"; fail "summary table does not have 6 rows"; }
if [ ${#plot_args[@]} = 1 ]; then
  expect "^wrote $tmp/m_tau.png$"
  [ "$(head -c 8 "$tmp/m_tau.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "m_tau.png is not a PNG"
fi

# The doc's smaller recipes (the ```python block after "### Smaller recipes") run too.
awk '/^### Smaller recipes/ {on=1; next}
     on==1 && /^```python$/ {on=2; next}
     on==2 && /^```$/ {exit}
     on==2 {print}' "$doc" > "$tmp/recipes.py"
[ -s "$tmp/recipes.py" ] || fail "no recipes block in $doc"
{ sed -n '1,/^path = sys.argv\[1\]$/p' "$script"
  echo 'f = h5py.File(path, "r")'
  cat "$tmp/recipes.py"
  echo 'assert len(logs) == sum(len(f[f"cells/{c:04d}/train"]) for c in summary["cell"]), "logs rows"'
  echo 'assert "m_tau_0.05" in logs.columns and "cell" in logs.columns, list(logs.columns)'
  echo 'print("recipes ok")'; } > "$tmp/recipes_run.py"
"$py" "$tmp/recipes_run.py" "$tmp/toy.h5" > "$tmp/recipes.txt" 2>&1 || { cat "$tmp/recipes.txt"; fail "the doc's recipes failed"; }
grep -qx "recipes ok" "$tmp/recipes.txt" || { cat "$tmp/recipes.txt"; fail "the doc's recipes did not finish"; }

echo "PASS: docs snippet"
