#!/usr/bin/env bash
# Fuzzes drift's readers for a while (tests/fuzz/README.md: the targets, their
# inputs and the properties each checks).
#
#   bash scripts/fuzz.sh                    # every target, 60 s each
#   bash scripts/fuzz.sh points 600         # one target for 10 minutes
#   nohup bash scripts/fuzz.sh all 1800 &   # every target, 30 minutes each, in the background
#
# Engine: libFuzzer (coverage-guided, AddressSanitizer + UndefinedBehaviorSanitizer,
# leak detection) when clang++ and its libFuzzer runtime are installed (Debian 12:
# clang and libclang-rt-14-dev); otherwise, or with DRIFT_FUZZ_ENGINE=driver, the
# replay + seeded-mutation driver that the Release build already has
# (build/bin/fuzz_<target>, not coverage-guided, uninstrumented).
#
# The libFuzzer binaries live in build-fuzz/: the target, its helpers and the
# reader sources it exercises (READER_SOURCES below) compiled with clang and
# instrumented; the rest of drift (the registry, the plugins, LibTorch, HDF5)
# comes uninstrumented from build/ (Release, gcc), which must be built.
#
# Each target's working corpus is build-fuzz/corpus/<target>, seeded from
# tests/fuzz/corpus/<target> (libFuzzer adds the inputs that reach new code; the
# repository's corpus is not changed). Crashes, hangs and out-of-memory inputs
# go to build-fuzz/artifacts/<target>/; logs to $DRIFT_FUZZ_LOGS (default
# /tmp/logs)/fuzz_<target>.log. The last line per target sums it up:
# executions, seconds, corpus size, artifacts.
#
# A crash or hang inside libhdf5 or LibTorch on a corrupt file does not end the
# run (libFuzzer: -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1;
# the driver: -fork=1): each is kept in the artifacts and, after the run,
# replayed by the driver, which prints where it happened (inside libhdf5 or
# LibTorch, or a failed property of drift's). By hand:
#   build/bin/fuzz_<target> -fork=1 build-fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGETS=(experiment results points images field_inputs feature_cache weights fashion_mnist)
target=${1:-all}
seconds=${2:-60}
LOGS=${DRIFT_FUZZ_LOGS:-/tmp/logs}
BUILD=${DRIFT_BUILD_DIR:-build}
OUT=${DRIFT_FUZZ_DIR:-build-fuzz}
mkdir -p "$LOGS" "$OUT"
if [ "$target" = all ]; then
  targets=("${TARGETS[@]}")
else
  [[ " ${TARGETS[*]} " == *" $target "* ]] || { echo "fuzz.sh: no target '$target' (targets: ${TARGETS[*]})" >&2; exit 2; }
  targets=("$target")
fi
[ -f "$BUILD/build.ninja" ] || { echo "fuzz.sh: $BUILD is not configured: run bash scripts/setup.sh first" >&2; exit 2; }

engine=${DRIFT_FUZZ_ENGINE:-}
if [ -z "$engine" ]; then
  if command -v clang++ > /dev/null && [ -n "$(find "$(clang++ -print-resource-dir)/lib" -name 'libclang_rt.fuzzer-x86_64.a' 2> /dev/null)" ]; then
    engine=libfuzzer
  else
    engine=driver
  fi
fi
echo "[fuzz] engine: $engine; targets: ${targets[*]}; $seconds s each; logs in $LOGS"

# The drivers (and, for libFuzzer, drift_runtime and the plugins it links);
# DRIFT_FUZZ_NO_BUILD=1 uses $BUILD as it is.
if [ "${DRIFT_FUZZ_NO_BUILD:-0}" != 1 ]; then
  cmake --build "$BUILD" --target drift_runtime drift_sdk $(printf 'fuzz_%s ' "${TARGETS[@]}") > "$LOGS/fuzz_build_$BUILD.log" 2>&1 ||
    { tail -30 "$LOGS/fuzz_build_$BUILD.log"; exit 1; }
fi

# --- the libFuzzer build ---------------------------------------------------------
# Reader sources compiled into every libFuzzer binary (instrumented): what the
# targets read through. Their copies in build/'s libdrift_runtime.a are not
# linked (the linker takes an archive member only for a symbol still missing).
READER_SOURCES=(io/h5.cpp io/h5_guard.cpp io/table.cpp io/results_cell.cpp field/field_io.cpp data/toy.cpp data/images.cpp
  config/experiment.cpp config/schema.cpp config/toml_value.cpp train/feature_cache.cpp sweep/merge.cpp
  sdk/weights.cpp data/fashion_mnist.cpp)
build_libfuzzer() {
  local t=$1 objdir=$OUT/obj
  mkdir -p "$objdir" "$OUT/bin"
  # Compiler flags: those of build/ for this target (includes, definitions), with
  # clang, -O1 -g and the sanitizers instead of -O3.
  local flags
  flags=$("$ROOT/.venv/bin/python" - "$BUILD" "$t" <<'EOF'
import json, shlex, sys
build, t = sys.argv[1], sys.argv[2]
for e in json.load(open(f"{build}/compile_commands.json")):
    if e["file"].endswith(f"tests/fuzz/fuzz_{t}.cpp"):
        args = shlex.split(e["command"])[1:]
        out, skip = [], False
        for a in args:
            if skip: skip = False; continue
            if a in ("-o", "-c"): skip = True; continue
            if a in ("-O3", "-O2", "-DNDEBUG") or a.startswith("-f") and a not in ("-fopenmp",): continue
            out.append(a)
        print(" ".join(shlex.quote(a) for a in out)); break
EOF
)
  [ -n "$flags" ] || { echo "fuzz.sh: no compile command for fuzz_$t in $BUILD" >&2; return 1; }
  local san=(-fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=all -fno-omit-frame-pointer)
  local objs=() src obj
  for src in "${READER_SOURCES[@]/#/framework/src/}" tests/fuzz/fuzz_common.cpp tests/fuzz/fuzz_datasets.cpp \
             "tests/fuzz/fuzz_$t.cpp"; do
    obj=$objdir/$(echo "$src" | tr '/' '_').o
    # (Rebuilt when the source or a tests/fuzz header is newer; a changed
    # framework header needs `rm -r build-fuzz/obj`.)
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find tests/fuzz -name '*.hpp' -newer "$obj")" ]; then
      echo "[fuzz] clang++ $src"
      eval clang++ "$flags" -O1 -g -fPIC "${san[*]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    fi
    objs+=("$obj")
  done
  # Link line: build/'s for the driver, without the driver's library.
  local libs
  libs=$(awk -v t="bin/fuzz_$t" '$1 == "build" && $2 == t":" {f = 1; next} f && /LINK_LIBRARIES/ {sub(/^ *LINK_LIBRARIES = /, ""); print; exit}' "$BUILD/build.ninja")
  libs=${libs//-Wl,--push-state,--whole-archive  lib\/libdrift_fuzz_common.a  -Wl,--pop-state/}
  libs=${libs//\\\$\$ORIGIN/$ROOT/$BUILD/bin}
  (cd "$BUILD" && eval clang++ -fsanitize=fuzzer "${san[*]}" -fopenmp "${objs[@]/#/$ROOT/}" "$libs" -o "$ROOT/$OUT/bin/fuzz_$t")
}

summary=()
for t in "${targets[@]}"; do
  corpus=$OUT/corpus/$t
  art=$OUT/artifacts/$t
  mkdir -p "$corpus" "$art"
  cp -n tests/fuzz/corpus/$t/* "$corpus/" 2> /dev/null || true
  log=$LOGS/fuzz_$t.log
  t0=$SECONDS
  if [ "$engine" = libfuzzer ]; then
    build_libfuzzer "$t" > "$LOGS/fuzz_build_$t.log" 2>&1 || { tail -30 "$LOGS/fuzz_build_$t.log"; exit 1; }
    # protect_shadow_gap=0: LibTorch's CUDA libraries reserve ranges ASan would
    # protect; container overflow checks are wrong across uninstrumented code.
    # The experiment target loads build/'s plugins.
    ASAN_OPTIONS=${ASAN_OPTIONS:-protect_shadow_gap=0:detect_container_overflow=0:allocator_may_return_null=1} \
    DRIFT_PLUGIN_PATH=$ROOT/$BUILD/lib/drift/plugins DRIFT_NUM_THREADS=1 OMP_NUM_THREADS=1 \
      "$OUT/bin/fuzz_$t" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -timeout=10 \
      -rss_limit_mb=6144 -malloc_limit_mb=4096 -max_total_time="$seconds" -print_final_stats=1 \
      -artifact_prefix="$art/" "$corpus" tests/fuzz/corpus/$t > "$log" 2>&1 || true
    execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
  else
    DRIFT_NUM_THREADS=1 OMP_NUM_THREADS=1 "$BUILD/bin/fuzz_$t" -fork=1 -timeout=10 -max_total_time="$seconds" \
      -seed="$RANDOM" -artifact_prefix="$art/" "$corpus" > "$log" 2>&1 || true
    execs=$(grep -oE "fuzz_$t: [0-9]+ executions" "$log" | grep -oE '[0-9]+' | tail -1 || true)
  fi
  # Where each kept input's fault is: replayed by the driver, which sorts it.
  for a in "$art"/*; do
    [ -f "$a" ] || continue
    case $(basename "$a") in
      leak-*) where="a leak (replay with $OUT/bin/fuzz_$t -runs=1 FILE for its stack)" ;;
      *) where=$(DRIFT_NUM_THREADS=1 timeout 120 "$BUILD/bin/fuzz_$t" -fork=1 -timeout=10 -artifact_prefix="$OUT/replay-" "$a" 2>&1 |
                   grep -aoE '(crash|hang) inside [A-Za-z0-9]+|FAILED: .*|execution 1 failed.*' | head -1 || true) ;;
    esac
    echo "[fuzz]   $(basename "$a"): ${where:-no fault when the driver replays it (uninstrumented Release)}" | tee -a "$log"
  done
  n_corpus=$(ls "$corpus" | wc -l)
  n_art=$(ls "$art" | wc -l)
  line="$t: ${execs:-?} executions in $((SECONDS - t0)) s ($engine), corpus $n_corpus inputs, $n_art artifacts in $art"
  echo "[fuzz] $line"
  summary+=("$line")
done
printf '%s\n' "${summary[@]}" > "$LOGS/fuzz_summary.txt"
