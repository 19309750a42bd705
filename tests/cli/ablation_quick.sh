#!/usr/bin/env bash
# experiments/ci/ablation_encoders_quick.toml end to end: the encoder grid
# (identity, random_resnet, mae_resnet with its pre-training, contrastive_resnet
# with its pre-training) trains a few class-conditional CFG steps on
# Fashion-MNIST and evaluates the image metrics at alpha = 1 and 2. Runs in a
# temporary directory (the results file and the pre-trained weights go there,
# nothing into the source tree) and checks only that every cell is done, that
# the two pre-trained encoders were pre-trained, and that the metric columns
# exist in /summary and in each cell's eval table.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
py=$DRIFT_SOURCE_DIR/.venv/bin/python
run=$DRIFT_BINARY_DIR/bin/drift-run
src=$DRIFT_SOURCE_DIR/experiments/ci/ablation_encoders_quick.toml
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$run" ] || fail "$run not built"
[ -x "$py" ] || fail "$py not found: run scripts/setup.sh"
[ -f "$src" ] || fail "$src missing"
export DRIFT_NUM_THREADS=${DRIFT_NUM_THREADS:-2}

tmp=$(mktemp -d /tmp/drift-ablation-quick-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# The experiment with its results file in $tmp; the encoders' default weights
# paths (results/encoders/..., relative to the current directory) land there too.
sed 's|^output = .*$|output = "'"$tmp"'/results/quick.h5"|' "$src" > "$tmp/quick.toml"
grep -qx "output = \"$tmp/results/quick.h5\"" "$tmp/quick.toml" || fail "could not rewrite 'output'"
if grep -q '^weights' "$tmp/quick.toml"; then fail "the quick file names a weights path: rewrite it here too"; fi

rc=0
(cd "$tmp" && "$run" quick.toml) > "$tmp/out.txt" 2>&1 || rc=$?
[ "$rc" = 0 ] || { tail -40 "$tmp/out.txt"; fail "drift-run exited $rc"; }
[ -f "$tmp/results/quick.h5" ] || { tail -20 "$tmp/out.txt"; fail "no results file"; }
ls "$tmp"/results/encoders/mae_resnet-*.pt > /dev/null 2>&1 || fail "no mae_resnet weights in $tmp/results/encoders"
ls "$tmp"/results/encoders/contrastive_resnet-*.pt > /dev/null 2>&1 || fail "no contrastive_resnet weights"

"$py" - "$tmp/results/quick.h5" <<'EOF' || { tail -40 "$tmp/out.txt"; fail "results check"; }
import sys, h5py, numpy as np
metrics = ["fid", "precision", "recall", "accuracy", "is"]
with h5py.File(sys.argv[1], "r") as f:
    s = f["summary"][()]
    names = s.dtype.names
    enc = [v.decode() if isinstance(v, bytes) else str(v) for v in s["encoder.plugin"]]
    assert enc == ['"identity"', '"random_resnet"', '"mae_resnet"', '"contrastive_resnet"'] \
        or enc == ["identity", "random_resnet", "mae_resnet", "contrastive_resnet"], enc
    for i, row in enumerate(s):
        st = row["status"]
        st = st.decode() if isinstance(st, bytes) else str(st)
        assert st == "done", f"cell {i} ({enc[i]}): {st}: {row['error']}"
    for m in metrics:
        for col in (f"final_{m}", f"final_{m}/alpha_2.0"):
            assert col in names, f"/summary lacks {col}: {names}"
            assert np.all(np.isfinite(s[col])), f"{col}: {s[col]}"
    for cid in f["cells"]:
        cell = f["cells"][cid]
        assert cell.attrs["steps_done"] == 3, (cid, cell.attrs["steps_done"])
        ev = cell["eval"][()].dtype.names
        for m in metrics:
            for col in (m, f"{m}_floor", f"{m}/alpha_2.0"):
                assert col in ev, f"cells/{cid}/eval lacks {col}: {ev}"
        assert "2.0" in cell["alpha_samples"], list(cell["alpha_samples"])
    # Each ResNet cell runs with its own [encoder.<name>] settings.
    conf = {cid: f["cells"][cid].attrs["config_toml"] for cid in f["cells"]}
    conf = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in conf.items()}
    assert "widths" not in conf["0000"], conf["0000"]
    for cid in ("0001", "0002", "0003"):
        assert "widths = [8, 16]" in conf[cid], conf[cid]
    for cid in ("0002", "0003"):
        assert "pretrain_steps = 3" in conf[cid], conf[cid]
    pre = [cid for cid in f["cells"] if "pretrain_time_s" in f["cells"][cid].attrs]
    assert pre == ["0002", "0003"], f"pre-trained in cells {pre}, expected 0002 and 0003"
print("cells:", ", ".join(enc), "- all done")
EOF
echo "cli.ablation_quick: OK"
