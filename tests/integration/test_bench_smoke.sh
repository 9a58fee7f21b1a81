#!/bin/bash
# Smoke test of bench/compare: runs the whole comparison once at tiny sizes
# (--quick: 256 MiB disks, 1 s fio runs, one repetition) and checks that it
# completes and prints a table row for every workload. No timing is asserted:
# the numbers of a quick run mean nothing (docs/performance.md).
#
# Environment (set by tests/CMakeLists.txt): VHDX_BUILD_DIR, VHDX_SOURCE_DIR.
set -euo pipefail

build=${VHDX_BUILD_DIR:?VHDX_BUILD_DIR must point at the build directory}
src=${VHDX_SOURCE_DIR:?VHDX_SOURCE_DIR must point at the source tree}

for f in "$build/vhdx" "$build/nbdkit-vhdx-plugin.so"; do
  [[ -e $f ]] || { echo "FAIL: $f is missing" >&2; exit 1; }
done
for tool in fio nbdkit qemu-nbd qemu-img; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (scripts/setup-debian.sh)" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vhdx-bench-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if ! /usr/bin/python3 "$src/bench/compare" --quick --no-doc --build-dir "$build" --workdir "$tmp" \
    >"$tmp/out" 2>"$tmp/err"; then
  echo "FAIL: bench/compare --quick failed" >&2
  tail -n 40 "$tmp/err" >&2
  exit 1
fi
cat "$tmp/out"

# One table row per workload: "| a | ...", ..., "| f1t |", "| gm |".
for row in a b c d e e1 f1t f1s f2t f2s gt gm; do
  grep -q "^| $row | " "$tmp/out" || { echo "FAIL: no table row for workload $row" >&2; exit 1; }
done
# The medians of the fio workloads are numbers for all three servers.
for row in a b c d e e1; do
  line=$(grep "^| $row | " "$tmp/out")
  cells=$(awk -F'|' '{print $5, $6, $7}' <<<"$line")
  [[ $cells != *—* ]] || { echo "FAIL: missing result in: $line" >&2; exit 1; }
done
echo "PASS: bench/compare --quick"
