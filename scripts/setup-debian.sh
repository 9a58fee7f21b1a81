#!/bin/bash
# Installs everything libvhdx needs to build, test and run its demo on
# Debian 12 (bookworm). Run as root. Does nothing (and needs no network)
# when every package is already installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build g++
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev
  nbdkit nbdkit-plugin-dev libnbd-bin python3-libnbd
  qemu-utils python3-libvhdi fio
  clang libclang-rt-14-dev bzip2
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  if [[ "$status" != "installed" ]]; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup-debian: all ${#packages[@]} packages are installed"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "setup-debian: missing packages: ${missing[*]}" >&2
  echo "setup-debian: run this script as root to install them" >&2
  exit 1
fi

echo "setup-debian: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
