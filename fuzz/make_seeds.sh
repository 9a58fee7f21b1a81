#!/bin/bash
# Writes seed corpora for the fuzz targets into OUT_DIR/<target>/ (default
# build-fuzz/work/seeds): images our writer builds, qemu-img images when
# qemu-img is installed, and the samples in ../shared/samples when present
# (decompressed to a temporary directory; only their metadata and a few data
# pages go into the seeds). Needs build-fuzz/fuzz/make_seeds (scripts/fuzz.sh
# builds it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-build-fuzz/work/seeds}
bin=${MAKE_SEEDS:-build-fuzz/fuzz/make_seeds}
samples=${VHDX_SAMPLES_DIR:-../shared/samples}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
images=()
if command -v qemu-img >/dev/null; then
  qemu-img create -q -f vhdx "$tmp/qemu-dynamic.vhdx" 8M
  qemu-img create -q -f vhdx -o subformat=fixed,block_size=1M "$tmp/qemu-fixed.vhdx" 4M
  qemu-img create -q -f vhdx -o block_size=1M,log_size=1M "$tmp/qemu-1m.vhdx" 64M
  if command -v qemu-io >/dev/null; then
    qemu-io -f vhdx -c "write -P 0xa5 0 64k" -c "write -P 0x5a 3M 4k" "$tmp/qemu-1m.vhdx" >/dev/null || true
  fi
  images+=("$tmp"/qemu-*.vhdx)
fi
for s in "$samples"/*.vhdx.bz2; do
  [[ -f $s ]] || continue
  name=$(basename "$s" .bz2)
  bzip2 -dc "$s" >"$tmp/$name"
  images+=("$tmp/$name")
done
mkdir -p "$out"
"$bin" "$out" "${images[@]}"
