#!/usr/bin/env bash
# README command 1: install what is missing, build the examples (Release),
# and run each one, in name order, with a time limit. Exit status is non-zero
# if any example fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

JOBS=${MPROC_JOBS:-2}
BUILD=build/release
LIMIT=120

bash scripts/deps.sh

echo "== tour: configure + build ($BUILD, Release, -j$JOBS)"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ \
      -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$BUILD" -j "$JOBS"

# The list comes from the sources, so a deleted example's stale binary is
# never run; a source without a binary was skipped by CMake (e.g. MPI).
shopt -s nullglob
sources=(examples/*.cpp)
if [ ${#sources[@]} -eq 0 ]; then
  echo "tour: WARNING: there are no examples (examples/*.cpp) to run"
  exit 0
fi

passed=0 failed=0 skipped=0 failures=()
for src in $(printf '%s\n' "${sources[@]}" | LC_ALL=C sort); do
  name=example_$(basename "$src" .cpp)
  exe=$BUILD/examples/$name
  if [ ! -x "$exe" ]; then
    echo "SKIP $name (not built)"
    skipped=$((skipped + 1))
    continue
  fi
  echo
  echo "---- $name ----"
  start=$(date +%s.%N)
  rc=0
  launcher=()
  if grep -q '#include <mproc/mpi.hpp>' "$src"; then
    # An MPI example runs as 4 ranks (Open MPI wants --allow-run-as-root as root).
    launcher=(mpirun --oversubscribe -n 4)
    if [ "$(id -u)" -eq 0 ]; then launcher+=(--allow-run-as-root); fi
    echo "(${launcher[*]} $exe)"
  fi
  timeout -k 5 "$LIMIT" "${launcher[@]}" "$exe" </dev/null || rc=$?
  secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
  if [ "$rc" -eq 0 ]; then
    echo "PASS $name (${secs} s)"
    passed=$((passed + 1))
  else
    if [ "$rc" -eq 124 ]; then why="timed out after ${LIMIT} s"
    elif [ "$rc" -gt 128 ]; then why="killed by signal $((rc - 128))"
    else why="exit $rc"
    fi
    echo "FAIL $name ($why, ${secs} s)"
    failed=$((failed + 1))
    failures+=("$name")
  fi
done

echo
if [ "$skipped" -gt 0 ]; then echo "tour: $skipped skipped (not built)"; fi
if [ "$failed" -gt 0 ]; then
  echo "tour: !!! FAILED examples: ${failures[*]} !!!"
fi
echo "tour: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
