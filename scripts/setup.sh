#!/usr/bin/env bash
# Sets up drift on a Debian 12 machine and builds it. Idempotent: installs only
# the Debian packages that are missing, creates the project venv (.venv) with
# PyTorch 2.11.0 (its LibTorch is what drift links) only if it is missing, then
# configures and builds in build/ (Release, Ninja).
#
#   bash scripts/setup.sh            # everything
#   DRIFT_BUILD_DIR=b bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${DRIFT_BUILD_DIR:-build}
TORCH_VERSION=2.11.0

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# --- 1. Debian packages -----------------------------------------------------------
PKGS=(build-essential cmake ninja-build pkg-config python3 python3-venv python3-pip
      libtomlplusplus-dev libabsl-dev libhdf5-dev hdf5-tools libboost-dev
      libboost-filesystem-dev libgtest-dev libgmock-dev libbenchmark-dev
      dataset-fashion-mnist python3-h5py zlib1g-dev libgloo-dev slurm-wlm munge)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "Debian packages: all present"
fi

# --- 2. Python venv with PyTorch (LibTorch) and the analysis packages ---------------
PY=${DRIFT_BASE_PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  log "installing torch==$TORCH_VERSION into .venv (large download)"
  .venv/bin/pip install -q --disable-pip-version-check "torch==$TORCH_VERSION"
fi
if ! .venv/bin/python -c "import numpy, h5py, pandas, matplotlib" 2>/dev/null; then
  log "installing numpy h5py pandas matplotlib into .venv"
  .venv/bin/pip install -q --disable-pip-version-check numpy h5py pandas matplotlib
fi
log "torch $(.venv/bin/python -c 'import torch; print(torch.__version__)') in .venv"

# --- 3. Configure and build -------------------------------------------------------
if [ "${DRIFT_SETUP_NO_BUILD:-0}" = 1 ]; then
  log "DRIFT_SETUP_NO_BUILD=1: not configuring or building"
  exit 0
fi
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  log "configuring $BUILD_DIR (Release)"
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDRIFT_PYTHON="$ROOT/.venv/bin/python"
fi
log "building $BUILD_DIR"
cmake --build "$BUILD_DIR" -j "$(nproc)"
log "built: $BUILD_DIR/bin ($(ls "$BUILD_DIR/bin" | grep -c '^drift-') tools), plugins in $BUILD_DIR/lib/drift/plugins"
