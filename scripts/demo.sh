#!/bin/bash
# The vhdx tool on a built-in example, cross-checked with QEMU.
#
#   bash scripts/demo.sh            (after building into ./build)
#   BUILD_DIR=/path/to/build bash scripts/demo.sh
#
# Part 1 makes a VHDX with qemu-img/qemu-io and reads it with our tool.
# Part 2 makes a VHDX with our tool alone and checks it with QEMU.
# Needs nothing beside the checkout, a build and qemu-utils.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$repo/build}
vhdx=$build/vhdx
if [[ ! -x $vhdx ]]; then
  echo "demo: $vhdx not found; build first (see README.md)" >&2
  exit 1
fi
for tool in qemu-img qemu-io cmp; do
  command -v "$tool" >/dev/null || { echo "demo: $tool is missing (bash scripts/setup-debian.sh)" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vhdx-demo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

failures=0
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() {  # run COMMAND...: shows it; a failure is counted and the demo goes on
  printf '$ %s\n' "$*"
  local rc=0
  "$@" || rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "FAIL: '$*' exited with status $rc"
    failures=$((failures + 1))
  fi
}
check() {  # check DESCRIPTION COMMAND...: one PASS/FAIL line
  local what=$1; shift
  if "$@"; then
    echo "PASS: $what"
  else
    echo "FAIL: $what"
    failures=$((failures + 1))
  fi
}
# pattern BYTE LENGTH > file: LENGTH bytes of value BYTE (octal, e.g. 245 = 0xa5).
pattern() { head -c "$2" /dev/zero | tr '\000' "\\$1"; }

step "Part 1: an image made by QEMU, read by vhdx"
run qemu-img create -q -f vhdx -o block_size=8M qemu.vhdx 256M
run qemu-io -f vhdx \
  -c 'write -q -P 0xa5 0 1M' \
  -c 'write -q -P 0x5a 20M 3M' \
  -c 'write -q -P 0xc3 100M 4k' \
  -c 'write -q -P 0x11 255M 1M' qemu.vhdx
run "$vhdx" info qemu.vhdx
run "$vhdx" map qemu.vhdx
run "$vhdx" convert -O raw qemu.vhdx ours.raw
run qemu-img convert -f vhdx -O raw qemu.vhdx qemu.raw
check "vhdx convert -O raw equals qemu-img convert -O raw" cmp ours.raw qemu.raw
check "the raw output is sparse (uses < 8 MiB on disk)" test "$(du -k ours.raw | cut -f1)" -lt 8192

step "Part 2: an image made by vhdx alone, checked with QEMU"
run "$vhdx" create -b 1M demo.vhdx 64M
pattern 245 1048576 >a5.bin       # 1 MiB of 0xa5
pattern 132 4096 >5a.bin          # 4 KiB of 0x5a
pattern 303 3145728 >c3.bin       # 3 MiB of 0xc3
run "$vhdx" write demo.vhdx 0 1M <a5.bin
run "$vhdx" write demo.vhdx 10M 4K <5a.bin
run "$vhdx" write demo.vhdx 61M 3M <c3.bin
run "$vhdx" info demo.vhdx
run "$vhdx" map demo.vhdx
check "vhdx check finds no errors" "$vhdx" check demo.vhdx
check "qemu-img check finds no errors" qemu-img check -q -f vhdx demo.vhdx
check "vhdx read returns what was written" cmp <("$vhdx" read demo.vhdx 10M 4K) 5a.bin
check "QEMU reads the patterns written by vhdx" \
  qemu-io -r -f vhdx -c 'read -q -P 0xa5 0 1M' -c 'read -q -P 0x5a 10M 4k' -c 'read -q -P 0xc3 61M 3M' \
  -c 'read -q -P 0 1M 9M' demo.vhdx
run "$vhdx" convert -O raw demo.vhdx demo.raw
check "vhdx convert -O raw matches the image (qemu-img compare)" qemu-img compare -q -f vhdx -F raw demo.vhdx demo.raw
run "$vhdx" convert -O vhdx -t fixed demo.raw back.vhdx
check "vhdx convert -O vhdx (raw to fixed VHDX) matches (qemu-img compare)" \
  qemu-img compare -q -f vhdx -F vhdx demo.vhdx back.vhdx
check "the converted image passes qemu-img check" qemu-img check -q -f vhdx back.vhdx

echo
if [[ $failures -eq 0 ]]; then
  echo "DEMO PASS"
else
  echo "DEMO FAIL ($failures checks failed)"
  exit 1
fi
