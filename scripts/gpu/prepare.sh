#!/usr/bin/env bash
# Run HERE (the Debian 12 CPU machine) before a GPU session: gathers into
# gpu-bundle/ (ignored by git) what the GPU machine lacks to build drift there
# against its own PyTorch 2.11 (CUDA 13) LibTorch:
#
#   usr/include/...               headers of TOML++, Abseil, HDF5 (serial), Gloo, GoogleTest,
#                                 Google Benchmark, and the Boost headers Boost.DLL needs
#   usr/lib/x86_64-linux-gnu/...  their libraries and CMake package files, as Debian
#                                 lays them out, plus every shared library they need
#                                 at run time that is not glibc / libstdc++ / libgcc
#   golden2/                      a second set of golden drift-field cases, copied from
#                                 DRIFT_EXTRA_GOLDEN_DIR when that names one (optional;
#                                 tests/golden travels with the working tree)
#   MANIFEST                      what was taken from which Debian package
#
# The GPU machine (no internet, no Debian packages; its own nvcc, CMake, ninja,
# g++ and python3 with torch 2.11+cu130) builds against this with
# scripts/gpu/device_check.sh; binaries get an RPATH into the bundle, so
# nothing else on that machine sees these libraries. The bundle and the
# working tree travel together under the device tool's 64 MiB limit: this
# script fails if they would not fit.
#
# Usage: bash scripts/gpu/prepare.sh [BUNDLE_DIR]   (default: gpu-bundle)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
bundle=${1:-gpu-bundle}
extra_golden=${DRIFT_EXTRA_GOLDEN_DIR:-}
limit_mib=${DRIFT_CARRY_LIMIT_MIB:-64}
arch=x86_64-linux-gnu

die() { echo "prepare.sh: $*" >&2; exit 1; }
[ "$(uname -m)" = x86_64 ] || die "this machine is $(uname -m); the bundle must be x86-64"
command -v dpkg >/dev/null || die "dpkg not found: this script reads the Debian packages' file lists"

# Development packages (headers, CMake files, link-time libraries) and the
# runtime packages holding their shared libraries.
dev_pkgs=(libtomlplusplus-dev libabsl-dev libgtest-dev libbenchmark-dev libhdf5-dev
          libboost-filesystem1.74-dev libboost-system1.74-dev libgloo-dev)
for p in "${dev_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || die "Debian package $p is not installed (scripts/setup.sh installs it)"
done

rm -rf "$bundle"
mkdir -p "$bundle"
bundle=$(cd "$bundle" && pwd)
: > "$bundle/MANIFEST"

copy() {  # copy one file or symlink, keeping its /usr/... path under the bundle
  local f=$1
  [ -e "$f" ] || [ -L "$f" ] || return 0
  mkdir -p "$bundle$(dirname "$f")"
  cp -a "$f" "$bundle$f"
  if [ -L "$f" ]; then  # and what the link points to
    local t
    t=$(readlink -f "$f")
    [ -e "$bundle$t" ] || copy "$t"
  fi
}

# Skipped: documentation, Fortran, static HDF5 (we link the shared ones),
# pkg-config files, Boost's full header tree (only the Boost.DLL closure below).
skip='^/usr/share/|fortran|/libhdf5[^/]*\.a$|/hdf5/serial/[^/]*\.a$|\.settings$|/pkgconfig/|^/usr/include/boost/|^/usr/bin/'
libs_of() {  # the shared libraries a package's .so symlinks point to
  dpkg -L "$1" | grep -E "^/usr/lib/$arch/.*\.so$" || true
}
for p in "${dev_pkgs[@]}"; do
  n=0
  while read -r f; do
    if [ -f "$f" ] || [ -L "$f" ]; then copy "$f"; n=$((n + 1)); fi
  done < <(dpkg -L "$p" | grep -Ev "$skip")
  echo "$p $(dpkg-query -W -f='${Version}' "$p"): $n files" >> "$bundle/MANIFEST"
done
# Boost: CMake package files (BoostConfig + the components), the filesystem
# library, and the headers Boost.DLL's shared_library pulls in with this
# compiler, plus whole config/predef trees (compiler-dependent includes).
for d in Boost-1.74.0 boost_headers-1.74.0 boost_filesystem-1.74.0 boost_system-1.74.0 \
         BoostDetectToolset-1.74.0.cmake; do
  cp -a --parents "/usr/lib/$arch/cmake/$d" "$bundle"
done
boost_headers=$(printf '#include <boost/dll/shared_library.hpp>\n#include <boost/filesystem.hpp>\n' |
  g++ -std=c++17 -M -x c++ - | tr ' \\' '\n\n' | grep '^/usr/include/boost/' | sort -u)
for f in $boost_headers; do copy "$f"; done
for d in config predef; do cp -a --parents "/usr/include/boost/$d" "$bundle"; done
echo "boost headers: $(echo "$boost_headers" | wc -l) files (closure of boost/dll/shared_library.hpp, boost/filesystem.hpp) + boost/config, boost/predef" >> "$bundle/MANIFEST"

# Shared libraries these need at run time (ldd closure), except the C/C++
# runtime, which the GPU machine has in a newer version.
base='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libresolv|libstdc\+\+|libgcc_s)'
libdir="$bundle/usr/lib/$arch"
# The soname links (libX.so.N -> libX.so.N.M.K) that programs load by.
while read -r so; do
  soname=$(objdump -p "$so" 2>/dev/null | awk '$1 == "SONAME" {print $2}')
  [ -n "$soname" ] && [ ! -e "$libdir/$soname" ] && ln -s "$(basename "$so")" "$libdir/$soname"
done < <(find "$libdir" -maxdepth 1 -name '*.so*' -type f)
changed=1
while [ "$changed" = 1 ]; do
  changed=0
  while read -r so; do
    while read -r name path; do
      [ -n "$path" ] || continue
      echo "$name" | grep -Eq "$base" && continue
      if [ ! -e "$libdir/$name" ]; then
        real=$(readlink -f "$path")
        if [ -e "$libdir/$(basename "$real")" ]; then
          ln -s "$(basename "$real")" "$libdir/$name"  # the soname link of a library we have
        else
          cp -L "$path" "$libdir/$name"
          echo "runtime dependency: $name (from $path)" >> "$bundle/MANIFEST"
        fi
        changed=1
      fi
    done < <(ldd "$so" 2>/dev/null | awk '/=>/ && $3 ~ /^\// {print $1, $3}')
  done < <(find "$libdir" -name '*.so*' -type f)
done

# Absolute symlinks would point outside the bundle on the GPU machine.
while read -r l; do
  t=$(readlink "$l")
  case "$t" in /*) ln -sfn "$(realpath --relative-to="$(dirname "$l")" "$bundle$t")" "$l" ;; esac
done < <(find "$bundle" -type l)
dangling=$(find "$bundle" -xtype l)
[ -z "$dangling" ] || die "dangling links in the bundle: $dangling"

# A second reference's golden cases (tests read them through DRIFT_EXTRA_GOLDEN_DIR).
rm -rf "$bundle/golden2"
if [ -n "$extra_golden" ]; then
  [ -d "$extra_golden" ] || die "DRIFT_EXTRA_GOLDEN_DIR=$extra_golden is not a directory"
  cp -a "$extra_golden" "$bundle/golden2"
fi

# Size: the bundle travels with the working tree (tracked + untracked, not
# ignored files) under one limit.
bundle_b=$(du -sb "$bundle" | cut -f1)
tree_b=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null | tail -1 | cut -f1)
total_mib=$(( (bundle_b + tree_b + 1048575) / 1048576 ))
printf 'bundle %s: %.1f MiB; working tree %.1f MiB; together %d MiB of %d MiB\n' \
  "$bundle" "$(echo "$bundle_b / 1048576" | bc -l)" "$(echo "$tree_b / 1048576" | bc -l)" \
  "$total_mib" "$limit_mib" | tee -a "$bundle/MANIFEST"
[ "$total_mib" -le "$limit_mib" ] || die "bundle + working tree = $total_mib MiB, over the ${limit_mib} MiB the device tool carries"
echo "prepare.sh: done. Carry '$(realpath --relative-to="$here" "$bundle")' and run scripts/gpu/device_check.sh there."
