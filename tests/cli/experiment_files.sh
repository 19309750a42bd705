#!/usr/bin/env bash
# Every experiment file under experiments/ passes drift-run --dry-run, and the
# image experiments resolve to the cells they are meant to have:
# ablation_encoders(_quick).toml one cell per encoder (and seed) with each
# ResNet's own [encoder.<name>] settings, fmnist_cfg.toml one cell per seed with several alphas, and
# imagenet_latent_ablation.toml (the paper's Table 8 default) without its
# latents file (--dry-run does not open data files).
set -euo pipefail
: "${DRIFT_SOURCE_DIR:?}" "${DRIFT_BINARY_DIR:?}"
run=$DRIFT_BINARY_DIR/bin/drift-run
fail() { echo "FAIL: $*"; exit 1; }
[ -x "$run" ] || fail "$run not built"

tmp=$(mktemp -d /tmp/drift-experiment-files-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

for f in "$DRIFT_SOURCE_DIR"/experiments/*/*.toml; do
  "$run" --dry-run "$f" > "$tmp/out.txt" 2>&1 || { cat "$tmp/out.txt"; fail "--dry-run $f"; }
  grep -q "all valid" "$tmp/out.txt" || { cat "$tmp/out.txt"; fail "--dry-run $f: no 'all valid'"; }
done

dry() {  # dry FILE: the dry-run listing of experiments/FILE
  "$run" --dry-run "$DRIFT_SOURCE_DIR/experiments/$1" 2>&1
}
# ablation_encoders_quick.toml: one cell per encoder; ablation_encoders.toml:
# two seeds per encoder (the encoder varies slowest).
check_encoders() {  # check_encoders FILE SEEDS
  local f=$1 seeds=$2 out c=0 enc s
  out=$(dry "$f")
  if [ "$seeds" = 1 ]; then
    grep -q ', 4 cells, all valid (grid: encoder.plugin)' <<< "$out" || fail "$f: $out"
  else
    grep -q ", $((4 * seeds)) cells, all valid (grid: encoder.plugin, experiment.seed;" <<< "$out" || fail "$f: $out"
  fi
  for enc in identity random_resnet mae_resnet contrastive_resnet; do
    for ((s = 0; s < seeds; s++)); do
      grep -qE "^  cell $c +encoder.plugin=\"?$enc\"? " <<< "$out" || fail "$f: cell $c is not $enc: $out"
      c=$((c + 1))
    done
  done
}
check_encoders ci/ablation_encoders_quick.toml 1
check_encoders paper/ablation_encoders.toml 2
grep -q ', 2 cells, all valid (grid: experiment.seed' <<< "$(dry paper/fmnist_cfg.toml)" || fail "fmnist_cfg.toml: $(dry paper/fmnist_cfg.toml)"

# The latent ablation where its data file does not exist.
mkdir -p "$tmp/exp"
mkdir -p "$tmp/exp/paper"
cp "$DRIFT_SOURCE_DIR/experiments/paper/imagenet_latent_ablation.toml" "$tmp/exp/paper/"
data=$(sed -n 's/^path = "\(.*\)".*$/\1/p' "$tmp/exp/paper/imagenet_latent_ablation.toml")
[ -n "$data" ] || fail "imagenet_latent_ablation.toml: no [data] path"
[ ! -e "$tmp/exp/paper/$data" ] || fail "$tmp/exp/paper/$data exists"
out=$("$run" --dry-run "$tmp/exp/paper/imagenet_latent_ablation.toml" 2>&1) \
  || fail "--dry-run imagenet_latent_ablation.toml without its latents file: $out"
grep -q ', 1 cell, all valid' <<< "$out" || fail "imagenet_latent_ablation.toml: $out"
echo "cli.experiment_files: OK"
