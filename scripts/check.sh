#!/usr/bin/env bash
# README command 2: install what is missing, then build and run every test.
#
#   a. release  Release build (tests + examples, and mproc::mpi with its
#               mpirun and network-namespace tests when MPI is found) and ctest
#   b. asan     ASan+UBSan build (gcc, -O1 -g) and ctest (without mproc::mpi:
#               Open MPI itself is not instrumented and reports its own leaks)
#   c. tsan     TSan build (gcc, -O1 -g) and ctest (likewise)
#   d. fuzz     clang libFuzzer build: replay fuzz/crashers/, then fuzz each
#               target for MPROC_FUZZ_SECONDS (default 10) over its corpus
#   e. install  cmake --install, then a consumer via find_package, via
#               pkg-config and via add_subdirectory
#
# Stops at the first failure. The last line is "N passed, M failed", the
# ctest totals over all stages.
#
# Usage: bash scripts/check.sh [--quick]
#   --quick               only stage a (the developer loop)
#   MPROC_JOBS=N          build/test parallelism (default 2)
#   MPROC_CCACHE=0        compile without ccache even if it is installed
#   MPROC_FUZZ_SECONDS=N  fuzzing time per target (default 10)
#   MPROC_FUZZ_CXX=path   clang++ for the fuzz build (default: newest found)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

usage() { sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

QUICK=0
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "check.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

JOBS=${MPROC_JOBS:-2}
FUZZ_SECONDS=${MPROC_FUZZ_SECONDS:-10}
TOTAL_PASSED=0
TOTAL_FAILED=0
STAGE=setup
STAGE_REPORT=()
DONE=0

summary() {
  local line
  if [ ${#STAGE_REPORT[@]} -gt 0 ]; then
    for line in "${STAGE_REPORT[@]}"; do echo "  $line"; done
  fi
  echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
}

# Any failure (a build error, a failing ctest, a crash found by a fuzzer)
# ends the script here with the stage named.
on_exit() {
  local rc=$?
  if [ "$DONE" -eq 0 ]; then
    echo
    echo "!!! check.sh: FAILED in stage '$STAGE' (exit $rc) !!!"
    summary
  fi
}
trap on_exit EXIT

fail() { echo "check.sh: $*" >&2; exit 1; }

banner() {
  echo
  echo "================================================================"
  echo "== check: $*"
  echo "================================================================"
}

# stage NAME FUNCTION: runs FUNCTION with a banner and its elapsed time.
stage() {
  STAGE=$1
  local t0=$SECONDS
  banner "$1"
  "$2"
  echo "== check: stage '$1' done in $((SECONDS - t0)) s"
}

# configure DIR ARGS...: every stage passes all of its options explicitly, so
# a build directory left behind by another configuration is put right.
configure() {
  local dir=$1
  shift
  cmake -S "$ROOT" -B "$dir" -DMPROC_BUILD_BENCH=OFF "${LAUNCHER[@]}" "$@"
}

# ccache, when present, makes a rebuild of unchanged sources (another clone,
# a re-run) nearly free. Paths are taken relative to the checkout so that
# clones in different directories share the cache; debug info then keeps
# the directory of whichever clone compiled first (only a debugger sees it).
LAUNCHER=()
if [ "${MPROC_CCACHE:-1}" != 0 ] && command -v ccache >/dev/null 2>&1; then
  LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR=$ROOT CCACHE_NOHASHDIR=1
  export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-8G}
else
  LAUNCHER=(-UCMAKE_CXX_COMPILER_LAUNCHER)
fi

build() {
  cmake --build "$1" -j "$JOBS"
}

# run_ctest DIR: runs the suite and adds its counts to the totals, parsed
# from ctest's "X% tests passed, Y tests failed out of Z".
run_ctest() {
  local dir=$1 log=$1/ctest.log rc=0
  ctest --test-dir "$dir" --output-on-failure -j "$JOBS" 2>&1 | tee "$log" || rc=$?
  local line passed=0 failed=0
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
  if [ -n "$line" ]; then
    failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    passed=$(( $(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line") - failed ))
  elif grep -q 'No tests were found' "$log"; then
    echo "check.sh: WARNING: no tests in $dir"
  elif [ "$rc" -ne 0 ]; then
    failed=1   # ctest itself failed (e.g. test discovery) before counting
  fi
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  STAGE_REPORT+=("$STAGE: $passed passed, $failed failed")
  [ "$rc" -eq 0 ] || fail "ctest failed in $dir (log: $log)"
}

# ------------------------------------------------------------------ stages ---
stage_release() {
  configure build/release -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ \
    -DMPROC_SANITIZE= -DMPROC_BUILD_FUZZ=OFF -DMPROC_WITH_MPI=ON \
    -DMPROC_BUILD_TESTS=ON -DMPROC_BUILD_EXAMPLES=ON
  build build/release
  run_ctest build/release
}

sanitized() {
  local dir=$1 kind=$2
  configure "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DCMAKE_CXX_COMPILER=g++ -DMPROC_SANITIZE="$kind" -DMPROC_BUILD_FUZZ=OFF -DMPROC_WITH_MPI=OFF \
    -DMPROC_BUILD_TESTS=ON -DMPROC_BUILD_EXAMPLES=OFF
  build "$dir"
  run_ctest "$dir"
}
stage_asan() { sanitized build/asan address; }
stage_tsan() { sanitized build/tsan thread; }

# clang-14 cannot compile libstdc++ 12's <ranges> (std::views::iota fails),
# so the newest clang found is used.
find_fuzz_cxx() {
  if [ -n "${MPROC_FUZZ_CXX:-}" ]; then echo "$MPROC_FUZZ_CXX"; return; fi
  local c
  for c in clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14 clang++; do
    if command -v "$c" >/dev/null 2>&1; then echo "$c"; return; fi
  done
  fail "no clang++ found for the fuzz build (scripts/deps.sh installs clang-16)"
}

# clang's sanitizer runtime needs llvm-symbolizer for readable stack traces;
# clang-16 from Debian does not bring its own, any recent one will do.
find_symbolizer() {
  local s
  for s in /usr/lib/llvm-16/bin/llvm-symbolizer llvm-symbolizer-16 llvm-symbolizer-14 llvm-symbolizer; do
    if command -v "$s" >/dev/null 2>&1; then command -v "$s"; return; fi
  done
}

stage_fuzz() {
  local cxx
  cxx=$(find_fuzz_cxx)
  echo "fuzz compiler: $cxx"
  if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
    ASAN_SYMBOLIZER_PATH=$(find_symbolizer || true)
    export ASAN_SYMBOLIZER_PATH
  fi
  configure build/fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DCMAKE_CXX_COMPILER="$cxx" -DMPROC_SANITIZE= -DMPROC_BUILD_FUZZ=ON -DMPROC_WITH_MPI=OFF \
    -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=OFF
  build build/fuzz

  shopt -s nullglob
  local sources=(fuzz/fuzz_*.cpp) src
  if [ ${#sources[@]} -eq 0 ]; then
    echo "check.sh: WARNING: no fuzz targets (fuzz/fuzz_*.cpp)"
  fi
  for src in "${sources[@]}"; do
    local name exe logs crashers work art
    name=$(basename "$src" .cpp)
    exe=build/fuzz/fuzz/$name
    logs=build/fuzz/logs
    work=build/fuzz/run/$name
    art=build/fuzz/artifacts/$name
    [ -x "$exe" ] || fail "fuzz target $exe was not built"
    mkdir -p "$logs"

    # Inputs that crashed once must never crash again. Given files (not a
    # directory), libFuzzer runs each one once and exits.
    crashers=(fuzz/crashers/"$name"/*)
    if [ ${#crashers[@]} -gt 0 ]; then
      echo ">> $name: replaying ${#crashers[@]} crasher(s)"
      if ! "$exe" -timeout=30 "${crashers[@]}" >"$logs/$name.crashers.log" 2>&1; then
        tail -n 60 "$logs/$name.crashers.log"
        fail "$name crashed on a regression input from fuzz/crashers/$name/"
      fi
    fi

    # Fuzz over a copy of the corpus, so the run never rewrites the seeds.
    rm -rf "$work" "$art"
    mkdir -p "$work" "$art"
    if [ -d "fuzz/corpus/$name" ]; then cp -R "fuzz/corpus/$name/." "$work/"; fi
    echo ">> $name: fuzzing for ${FUZZ_SECONDS} s"
    if ! "$exe" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
         -print_final_stats=1 -artifact_prefix="$art/" "$work" >"$logs/$name.log" 2>&1; then
      tail -n 80 "$logs/$name.log"
      local artifacts=("$art"/*) found=""
      [ ${#artifacts[@]} -eq 0 ] || found=${artifacts[0]}
      fail "$name found a failure (${found:-no artifact written}). Reproduce: $exe ${found:-<input>}; keep it as a regression input: cp ${found:-<input>} fuzz/crashers/$name/"
    fi
    grep -E '^Done [0-9]+ runs' "$logs/$name.log" | sed "s/^/   $name: /" || true
  done
}

stage_install() {
  local base=build/install-test
  local prefix=$ROOT/$base/prefix
  rm -rf "$base"
  cmake --install build/release --prefix "$prefix"

  echo ">> consumer via find_package(mproc CONFIG)"
  cmake -S tests/consumer -B "$base/find_package" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER=g++ -DCMAKE_PREFIX_PATH="$prefix"
  build "$base/find_package"
  "$base/find_package/mproc_consumer"
  if [ -x "$base/find_package/mproc_consumer_mpi" ]; then
    echo ">> consumer of mproc::mpi via find_package, under mpirun"
    local as_root=()
    [ "$(id -u)" -ne 0 ] || as_root=(--allow-run-as-root)
    mpirun --oversubscribe "${as_root[@]}" -n 2 "$base/find_package/mproc_consumer_mpi"
  fi

  echo ">> consumer via pkg-config"
  local pcdir
  pcdir=$(dirname "$(find "$prefix" -name mproc.pc -print -quit)")
  [ -f "$pcdir/mproc.pc" ] || fail "mproc.pc was not installed under $prefix"
  local flags
  flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs mproc)
  echo "pkg-config --cflags --libs mproc: $flags"
  # shellcheck disable=SC2086  # $flags is a list of words on purpose
  g++ -std=c++20 tests/consumer/main.cpp $flags -o "$base/consumer_pkgconfig"
  "$base/consumer_pkgconfig"

  echo ">> consumer via add_subdirectory"
  cmake -S tests/consumer -B "$base/add_subdirectory" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER=g++ -DMPROC_SOURCE_DIR="$ROOT"
  build "$base/add_subdirectory"
  "$base/add_subdirectory/mproc_consumer"
}

# -------------------------------------------------------------------- main ---
T0=$SECONDS
STAGE=deps
bash scripts/deps.sh

stage release stage_release
if [ "$QUICK" -eq 0 ]; then
  stage asan stage_asan
  stage tsan stage_tsan
  stage fuzz stage_fuzz
  stage install stage_install
fi

DONE=1
echo
echo "== check: all stages passed in $((SECONDS - T0)) s$([ "$QUICK" -eq 1 ] && echo ' (--quick: release only)')"
summary
