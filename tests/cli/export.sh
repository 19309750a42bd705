#!/usr/bin/env bash
# drift-export end to end: a few class-conditional Fashion-MNIST steps with the
# dit and conv generators and an unconditional 2-D mlp run, each exported as
# TorchScript; Python (torch.jit.load, no drift) must reproduce the samples the
# run recorded, from the same noise seed, and sample any batch size. Then the
# errors: one line each, exit status 1, no output file written.
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
py=$DRIFT_SOURCE_DIR/.venv/bin/python
run=$DRIFT_BINARY_DIR/bin/drift-run
exp=$DRIFT_BINARY_DIR/bin/drift-export
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$run" ] && [ -x "$exp" ] || fail "drift-run / drift-export not built"
[ -x "$py" ] || fail "$py not found: run scripts/setup.sh"
export DRIFT_NUM_THREADS=${DRIFT_NUM_THREADS:-2}

tmp=$(mktemp -d /tmp/drift-export-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

cat > "$tmp/images.toml" <<EOF
[experiment]
name = "export_images"
seed = 3
output = "$tmp/images.h5"
[data]
dataset = "fashion_mnist"
[generator]
plugin = "dit"
[generator.dit]
hidden = 32
depth = 1
heads = 2
patch = 4
in_context = 4
style_codebook = 8
style_count = 4
[generator.conv]
width = 8
[train]
steps = 3
n_classes = 10
n_gen = 2
n_pos = 2
n_unc = 1
warmup = 1
eval_every = 0
[eval]
metrics = []
n_samples = 20
[grid]
"generator.plugin" = ["dit", "conv"]
EOF
cat > "$tmp/toy.toml" <<EOF
[experiment]
name = "export_toy"
seed = 1
output = "$tmp/toy.h5"
[data]
dataset = "bimodal"
[generator]
plugin = "mlp"
[train]
steps = 5
n_gen = 32
n_pos = 32
warmup = 1
eval_every = 0
[eval]
metrics = []
n_samples = 64
EOF
for e in images toy; do
  rc=0; "$run" "$tmp/$e.toml" > "$tmp/$e.out" 2>&1 || rc=$?
  [ "$rc" = 0 ] || { tail -20 "$tmp/$e.out"; fail "drift-run $e.toml exited $rc"; }
done

# Exports (the default --out is <stem>_<cell>.pt beside the results file).
"$exp" "$tmp/images.h5" --cell 0 > "$tmp/e0.out" || fail "export of cell 0"
grep -q "generator 'dit'.*10 classes, traced at batch 20) -> $tmp/images_0.pt" "$tmp/e0.out" \
  || { cat "$tmp/e0.out"; fail "export report of cell 0"; }
"$exp" "$tmp/images.h5" --cell 0001 --out "$tmp/conv.pt" > /dev/null || fail "export of cell 1"
"$exp" "$tmp/toy.h5" --batch 16 > "$tmp/toy_export.out" || fail "export of the toy cell"
grep -q "unconditional, traced at batch 16" "$tmp/toy_export.out" || { cat "$tmp/toy_export.out"; fail "toy export report"; }

"$py" - "$tmp" <<'EOF' || fail "Python check of the exports"
import sys, h5py, numpy as np, torch
tmp = sys.argv[1]

def last_samples(f, cid):
    g = f["cells"][cid]["samples"]
    step = sorted(k for k in g if not k.endswith("_labels"))[-1]
    labels = g[step + "_labels"][()] if step + "_labels" in g else None
    return g[step][()], labels

with h5py.File(f"{tmp}/images.h5", "r") as f:
    for cid, path, plugin in (("0000", f"{tmp}/images_0.pt", "dit"), ("0001", f"{tmp}/conv.pt", "conv")):
        m = torch.jit.load(path)
        x, labels = last_samples(f, cid)
        assert m.batch_size == len(labels) == 20 and m.n_classes == 10, (m.batch_size, m.n_classes)
        assert list(m.sample_shape) == [1, 32, 32] and m.cell == f"cells/{cid}"
        assert f'plugin = "{plugin}"' in m.config_toml
        # The state dict is the cell's /generator group, same names and values.
        sd = m.state_dict()
        stored = f["cells"][cid]["generator"]
        assert sorted(sd) == sorted(stored), (sorted(sd)[:5], sorted(stored)[:5])
        for k in sd:
            assert np.array_equal(sd[k].numpy(), stored[k][()]), k
        # Same noise seed, same labels, alpha = 1: the run's recorded samples.
        torch.manual_seed(m.eval_noise_seed)
        y = m(torch.from_numpy(labels), torch.ones(20))
        err = float(np.abs(y.numpy() - x).max())
        assert err < 1e-5, f"{plugin}: exported samples differ from the recorded ones by {err}"
        # Another seed draws other samples; sample() = forward() at n = batch.
        torch.manual_seed(m.eval_noise_seed + 1)
        assert float(np.abs(m(torch.from_numpy(labels), torch.ones(20)).numpy() - x).max()) > 0.1
        torch.manual_seed(m.eval_noise_seed)
        assert torch.equal(m.sample(20, torch.from_numpy(labels)), y)
        # Any n (chunks of 20, the last padded); guidance changes the samples.
        z = m.sample(47, torch.arange(47) % 10, torch.full([47], 2.0))
        assert z.shape == (47, 1, 32, 32) and torch.isfinite(z).all() and not z.requires_grad
        assert m.sample(0, torch.zeros(0, dtype=torch.long)).shape == (0, 1, 32, 32)
        torch.manual_seed(5); a1 = m.sample(20, torch.from_numpy(labels))
        torch.manual_seed(5); a3 = m.sample(20, torch.from_numpy(labels), torch.full([20], 3.0))
        assert not torch.equal(a1, a3), "alpha has no effect"
        for bad, why in ((lambda: m.sample(5), "class-conditional"),
                         (lambda: m.sample(3, torch.tensor([0, 1, 10])), "[0, n_classes)")):
            try:
                bad()
            except torch.jit.Error as e:
                assert why in str(e), str(e)
            else:
                raise AssertionError(f"no error for: {why}")

with h5py.File(f"{tmp}/toy.h5", "r") as f:
    m = torch.jit.load(f"{tmp}/toy.pt")
    x, _ = last_samples(f, "0000")
    assert m.n_classes == 0 and m.batch_size == 16 and list(m.sample_shape) == [2]
    # The run drew its 64 evaluation samples in one batch; traced at 16 the
    # export reproduces them only in distribution: compare moments.
    torch.manual_seed(0)
    y = m.sample(4096)
    assert y.shape == (4096, 2) and torch.isfinite(y).all()
    assert np.allclose(y.numpy().mean(0), x.mean(0), atol=0.5), (y.mean(0), x.mean(0))
print("python: exports reproduce the recorded samples")
EOF

# Errors: one line naming what is wrong, exit 1, nothing written.
expect_error() {  # expected-substring args...
  local want=$1; shift
  local rc=0
  "$exp" "$@" > "$tmp/err.out" 2> "$tmp/err.txt" || rc=$?
  [ "$rc" = 1 ] || { cat "$tmp/err.txt"; fail "drift-export $* exited $rc, expected 1"; }
  [ "$(wc -l < "$tmp/err.txt")" = 1 ] || { cat "$tmp/err.txt"; fail "drift-export $*: error is not one line"; }
  grep -qF -- "$want" "$tmp/err.txt" || { cat "$tmp/err.txt"; fail "drift-export $*: error lacks '$want'"; }
}
expect_error "$tmp/missing.h5" "$tmp/missing.h5" --out "$tmp/x.pt"
expect_error "choose one with --cell" "$tmp/images.h5" --out "$tmp/x.pt"
expect_error "no cell '7' (cells: 0000, 0001)" "$tmp/images.h5" --cell 7 --out "$tmp/x.pt"
# A cell whose generator weights were removed, and one with a wrong shape.
cp "$tmp/images.h5" "$tmp/broken.h5"
"$py" - "$tmp/broken.h5" <<'EOF'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    del f["cells/0000/generator/final_layer.linear.weight"]
    w = f["cells/0001/generator/y_embedder.weight"]
    del f["cells/0001/generator/y_embedder.weight"]
    f["cells/0001/generator/y_embedder.weight"] = np.zeros((3, 3), np.float32)
EOF
expect_error "/cells/0000/generator/final_layer.linear.weight: missing" "$tmp/broken.h5" --cell 0 --out "$tmp/x.pt"
expect_error "/cells/0001/generator/y_embedder.weight: shape [3, 3]" "$tmp/broken.h5" --cell 1 --out "$tmp/x.pt"
[ ! -e "$tmp/x.pt" ] && [ ! -e "$tmp/x.pt.tmp" ] || fail "a failed export left a file"
rc=0; "$exp" "$tmp/images.h5" --batch 0 > /dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "--batch 0 is a usage error (exit 2), got $rc"
echo "PASS"
