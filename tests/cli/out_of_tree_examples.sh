#!/usr/bin/env bash
# Installs drift to a temporary prefix, builds examples/out_of_tree_generator
# and examples/out_of_tree_encoder against the installed CMake package (each a
# copy of the folder, built in its own build/ as the README says), runs each
# example's experiment file with the installed drift-run (the plugin comes from
# the file's `[plugins] paths`, nothing else), checks the results files, and
# exports the generator example's cell with the installed drift-export.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
CMAKE=${CMAKE_COMMAND:-cmake}
py=$DRIFT_SOURCE_DIR/.venv/bin/python
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$py" ] || fail "$py not found: run scripts/setup.sh"
export DRIFT_NUM_THREADS=${DRIFT_NUM_THREADS:-2}
tmp=$(mktemp -d /tmp/drift-examples-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

"$CMAKE" --install "$DRIFT_BINARY_DIR" --prefix "$prefix" > "$tmp/install.log"
for f in bin/drift-run bin/drift-export lib/cmake/drift/driftConfig.cmake include/drift/sdk.hpp; do
  [ -e "$prefix/$f" ] || fail "$f not installed"
done
unset DRIFT_PLUGIN_PATH

# Copy, configure and build one example folder (its own CMake project).
build_example() {  # folder plugin
  cp -r "$DRIFT_SOURCE_DIR/examples/$1" "$tmp/$1"
  rm -rf "$tmp/$1/build"
  "$CMAKE" -S "$tmp/$1" -B "$tmp/$1/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
    ${DRIFT_TORCH_DIR:+-DTorch_DIR="$DRIFT_TORCH_DIR"} -DCMAKE_BUILD_TYPE=Release \
    > "$tmp/$1.configure.log" 2>&1 || { cat "$tmp/$1.configure.log"; fail "configuring $1"; }
  "$CMAKE" --build "$tmp/$1/build" > "$tmp/$1.build.log" 2>&1 || { cat "$tmp/$1.build.log"; fail "building $1"; }
  [ -f "$tmp/$1/build/$2.so" ] || fail "$1: build/$2.so not built"
}
build_example out_of_tree_generator residual_mlp
build_example out_of_tree_encoder random_conv

# Run each experiment file as shipped, from $tmp (results land in $tmp/results).
run_example() {  # folder
  local rc=0
  (cd "$tmp" && "$prefix/bin/drift-run" "$tmp/$1/experiment.toml") > "$tmp/$1.run.log" 2>&1 || rc=$?
  [ "$rc" = 0 ] || { tail -30 "$tmp/$1.run.log"; fail "drift-run $1/experiment.toml exited $rc"; }
}
run_example out_of_tree_generator
run_example out_of_tree_encoder
gen_h5=$tmp/results/residual_mlp_example.h5
enc_h5=$tmp/results/random_conv_example.h5
[ -s "$gen_h5" ] && [ -s "$enc_h5" ] || fail "a results file is missing: $(ls "$tmp/results" 2>&1)"

# The results: one done cell each, every step logged with a finite loss, the
# components recorded, the metrics and features the files ask for.
"$py" - "$gen_h5" "$enc_h5" <<'EOF' || fail "results files"
import sys, h5py, numpy as np
gen, enc = sys.argv[1], sys.argv[2]

def cell(path, steps):
    f = h5py.File(path, "r")
    assert list(f["cells"]) == ["0000"], list(f["cells"])
    c = f["cells/0000"]
    status = c.attrs["status"]
    assert status == "done", (path, status, c.attrs.get("error"))
    t = c["train"][()]
    assert list(t["step"]) == list(range(1, steps + 1)), t["step"]
    assert np.isfinite(t["loss"]).all() and (t["loss"] > 0).all(), t["loss"]
    return f, c

f, c = cell(gen, 200)
toml = c.attrs["config_toml"]
assert 'plugin = "residual_mlp"' in toml and "alpha_frequencies = 4" in toml, toml
# The buffer and the parameters are stored by name, at their shapes.
g = c["generator"]
assert g["alpha_freqs"][()].tolist() == [1, 2, 4, 8], g["alpha_freqs"][()]
assert g["embed.weight"].shape == (8, 16) and g["head.weight"].shape == (2, 64)
assert {"block0.fc1.weight", "block1.norm.weight", "stem.weight"} <= set(g), sorted(g)
ev = c["eval"][()]
assert list(ev["step"]) == [100, 200], ev["step"]
for k in ("mmd", "mmd_floor", "mmd/alpha_2.0", "modes_covered"):
    assert np.isfinite(ev[k]).all(), (k, ev[k])
x = c["samples/0000000200"][()]
assert x.shape == (512, 2) and np.isfinite(x).all(), x.shape
assert c["samples/0000000200_labels"][()].max() == 7
assert c["alpha_samples/2.0/0000000200"].shape == (512, 2), list(c["alpha_samples"])
print(f"generator example: loss {c['train']['loss'][-1]:.3f}, mmd {ev['mmd'][-1]:.4f} "
      f"(floor {ev['mmd_floor'][-1]:.4f}), modes covered {ev['modes_covered'][-1]}")

f, c = cell(enc, 5)
toml = c.attrs["config_toml"]
assert 'plugin = "random_conv"' in toml and "widths = [16, 32]" in toml, toml
t = c["train"][()]
# Features a-c of maps c1 and c2 (and raw, x2): one m_tau column per feature.
names = sorted({n.split("/", 1)[1] for n in t.dtype.names if n.startswith("m_tau_0.02/")})
want = sorted(["raw", "x2"] + [f"{m}.{k}" for m in ("c1", "c2")
                               for k in ("loc", "mean", "std", "p2.mean", "p2.std")])
assert names == want, names
for n in t.dtype.names:
    if n.startswith("m_tau_"):
        assert np.isfinite(t[n]).all(), n
# [eval] features = ["c2.mean"]: 16 samples, one location, 32 channels.
fg = c["features/c2.mean"]
step = sorted(fg)[-1]
assert fg[step]["gen"].shape == (16, 1, 32) and fg[step]["real"].shape == (16, 1, 32), \
    (fg[step]["gen"].shape, fg[step]["real"].shape)
assert c["samples/0000000005"].shape == (40, 1, 32, 32)
print("encoder example: features", ", ".join(names))
EOF

# The generator traces: export it and reproduce the run's last samples in
# plain PyTorch from the same noise seed.
"$prefix/bin/drift-export" "$gen_h5" --out "$tmp/residual_mlp.pt" > "$tmp/export.log" 2>&1 \
  || { cat "$tmp/export.log"; fail "drift-export of the generator example"; }
grep -q "generator 'residual_mlp'.*8 classes, traced at batch 512" "$tmp/export.log" \
  || { cat "$tmp/export.log"; fail "export report"; }
"$py" - "$gen_h5" "$tmp/residual_mlp.pt" <<'EOF' || fail "Python check of the export"
import sys, h5py, numpy as np, torch
with h5py.File(sys.argv[1], "r") as f:
    x = f["cells/0000/samples/0000000200"][()]
    labels = f["cells/0000/samples/0000000200_labels"][()]
m = torch.jit.load(sys.argv[2])
assert m.n_classes == 8 and list(m.sample_shape) == [2] and m.batch_size == 512
torch.manual_seed(m.eval_noise_seed)
y = m(torch.from_numpy(labels), torch.ones(512))
err = float(np.abs(y.numpy() - x).max())
assert err < 1e-5, f"exported samples differ from the recorded ones by {err}"
torch.manual_seed(0)
a1 = m.sample(100, torch.arange(100) % 8)
torch.manual_seed(0)
a3 = m.sample(100, torch.arange(100) % 8, torch.full([100], 3.0))
assert not torch.equal(a1, a3), "alpha has no effect on the exported generator"
print(f"export: recorded samples reproduced (max difference {err:.1e})")
EOF
echo "PASS: out-of-tree generator and encoder examples"
