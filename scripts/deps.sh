#!/usr/bin/env bash
# Installs the Debian packages mproc needs to build, test, fuzz and benchmark
# (docs/dependencies.md says why each one is here). Idempotent: it asks apt
# only for what `dpkg -s` reports missing, so a ready machine costs nothing.
set -euo pipefail

PACKAGES=(
  build-essential
  cmake
  pkg-config
  libgtest-dev
  libgmock-dev
  libbenchmark-dev
  libcereal-dev
  clang-14
  libclang-rt-14-dev
  llvm-14
  clang-16
  libclang-rt-16-dev
  libssl-dev
  libboost-dev
  gnuplot-nox
  python3
  procps
  iproute2
  ccache
  openmpi-bin
  libopenmpi-dev
  python3-mpi4py
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "deps: missing ${missing[*]}, and not root and no sudo to install them" >&2
    exit 1
  fi
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "deps: done"
