#!/bin/bash
# Integration test of the `vhdx` command-line tool: every command, its exit
# codes and its error paths, cross-checked against qemu-img / qemu-io.
#
# Environment (set by tests/CMakeLists.txt): VHDX_BUILD_DIR (holds ./vhdx),
# VHDX_SOURCE_DIR, VHDX_SAMPLES_DIR (shared/samples with the .bz2 images).
set -euo pipefail

build=${VHDX_BUILD_DIR:?VHDX_BUILD_DIR must point at the build directory}
samples=${VHDX_SAMPLES_DIR:-}
vhdx=$build/vhdx
[[ -x $vhdx ]] || { echo "FAIL: $vhdx is missing" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vhdx-cli-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

section() { echo "--- $*"; }
fail() {
  echo "FAIL: $*" >&2
  for f in out err; do
    if [[ -s $f ]]; then echo "  $f:" >&2; head -c 2000 "$f" | sed 's/^/    /' >&2; fi
  done
  exit 1
}

# expect CODE COMMAND...: runs COMMAND with stdout in ./out and stderr in
# ./err and requires exit status CODE.
expect() {
  local want=$1; shift
  local rc=0
  "$@" >out 2>err || rc=$?
  [[ $rc -eq $want ]] || fail "'$*' exited with $rc, expected $want"
}
# expect_in FILE TEXT: FILE contains the fixed string TEXT.
expect_in() { grep -qF -- "$2" "$1" || fail "$1 does not contain '$2'"; }
expect_not_in() { ! grep -qF -- "$2" "$1" || fail "$1 contains '$2'"; }
# pattern OCTAL LENGTH: LENGTH bytes of one value (e.g. 245 = 0xa5).
pattern() { head -c "$2" /dev/zero | tr '\000' "\\$1"; }
# json_check FILE PYTHON-EXPRESSION...: each expression over `j` must be true.
json_check() {
  local file=$1; shift
  python3 - "$file" "$@" <<'PY' || fail "JSON assertion failed on $file"
import json, sys
j = json.load(open(sys.argv[1]))
for expr in sys.argv[2:]:
    if not eval(expr):
        print("assertion false: " + expr, file=sys.stderr)
        sys.exit(1)
PY
}
mib=1048576

section "usage and argument errors"
expect 0 "$vhdx" --help
for cmd in info check map convert create read write; do expect_in out "$cmd"; done
for cmd in info check map convert create read write; do
  expect 0 "$vhdx" "$cmd" --help
  expect_in out "Usage"
done
expect 0 "$vhdx" --version
expect_in out "vhdx "
rc=0; "$vhdx" >out 2>err || rc=$?; [[ $rc -ne 0 ]] || fail "no subcommand must fail"
rc=0; "$vhdx" frobnicate >out 2>err || rc=$?; [[ $rc -ne 0 ]] || fail "unknown subcommand must fail"
rc=0; "$vhdx" info >out 2>err || rc=$?; [[ $rc -ne 0 ]] || fail "info without FILE must fail"
expect_in err "FILE"
rc=0; "$vhdx" info --bogus x >out 2>err || rc=$?; [[ $rc -ne 0 ]] || fail "unknown option must fail"
rc=0; "$vhdx" convert a b >out 2>err || rc=$?; [[ $rc -ne 0 ]] || fail "convert without -O must fail"
rc=0; "$vhdx" convert -O qcow2 a b >out 2>err || rc=$?; [[ $rc -ne 0 ]] || fail "convert -O qcow2 must fail"

section "missing and non-VHDX files"
expect 1 "$vhdx" info missing.vhdx
expect_in err "vhdx: info: missing.vhdx: NotFound"
expect 1 "$vhdx" map missing.vhdx
expect_in err "vhdx: map: missing.vhdx: "
expect 1 "$vhdx" read missing.vhdx 0 512
expect_in err "vhdx: read: missing.vhdx: "
expect 3 "$vhdx" check missing.vhdx
expect_in err "vhdx: check: missing.vhdx: "
pattern 101 $mib >notvhdx.raw
expect 1 "$vhdx" info notvhdx.raw
expect_in err "vhdx: info: notvhdx.raw: "
expect 3 "$vhdx" check notvhdx.raw
expect 1 "$vhdx" convert -O raw missing.vhdx out.raw
[[ ! -e out.raw ]] || fail "a failed convert left out.raw behind"

section "an image made by qemu-img: info, map, read, check"
qemu-img create -q -f vhdx -o block_size=8M q.vhdx 256M
qemu-io -f vhdx -c 'write -q -P 0xa5 0 1M' -c 'write -q -P 0x5a 20M 3M' -c 'write -q -P 0xc3 100M 4k' \
  -c 'write -q -P 0x11 255M 1M' q.vhdx >/dev/null
qemu-img convert -f vhdx -O raw q.vhdx q-by-qemu.raw
sha_before=$(sha256sum q.vhdx | cut -d' ' -f1)

expect 0 "$vhdx" info q.vhdx
expect_in out "file format: vhdx"
expect_in out "virtual size: 256 MiB (268435456 bytes)"
expect_in out "block size: 8 MiB (8388608 bytes)"
expect_in out "logical sector size: 512"
expect_in out "type: dynamic"
expect_in out "log: clean"
expect_in out "QEMU"
expect 0 "$vhdx" info --json q.vhdx
json_check out 'j["format"] == "vhdx"' 'j["virtual_size"] == 268435456' 'j["block_size"] == 8388608' \
  'j["logical_sector_size"] == 512' 'j["type"] == "dynamic"' 'j["log"]["state"] == "clean"' \
  'not j["log"]["dirty"]' 'len(j["headers"]) == 2' 'sum(h["current"] for h in j["headers"]) == 1' \
  'all(h["valid"] for h in j["headers"])' 'j["payload_blocks"] == 32' \
  'j["blocks"]["fully_present"] + j["blocks"]["partially_present"] == 4' \
  'sorted(r["name"] for r in j["regions"]) == ["BAT", "metadata"]' \
  'len(j["metadata_items"]) >= 5' 'j["has_parent"] is False' 'len(j["chain"]) == 1' \
  'j["minimum_size"] == 268435456' 'j["creator"].startswith("QEMU")'

expect 0 "$vhdx" map q.vhdx
expect_in out "Offset"
expect_in out "data"
expect 0 "$vhdx" map --json q.vhdx
# The extents tile the disk; data exactly where qemu-io wrote (8 MiB blocks:
# blocks 0, 2, 12 and 31 hold data).
json_check out 'j[0]["start"] == 0' \
  'all(a["start"] + a["length"] == b["start"] for a, b in zip(j, j[1:]))' \
  'j[-1]["start"] + j[-1]["length"] == 268435456' \
  'sorted((e["start"], e["length"]) for e in j if e["data"]) == [(0, 8<<20), (16<<20, 8<<20), (96<<20, 8<<20), (248<<20, 8<<20)]' \
  'all(e["present"] and not e["zero"] and e["offset"] % (1<<20) == 0 and e["depth"] == 0 for e in j if e["data"])' \
  'all("offset" not in e for e in j if not e["data"])'

expect 0 "$vhdx" read q.vhdx 20M 3M
cmp out <(pattern 132 $((3 * mib))) || fail "read 20M 3M differs from the 0x5a pattern"
expect 0 "$vhdx" read q.vhdx 1000 100000   # unaligned reads are allowed
cmp out <(dd if=q-by-qemu.raw bs=1 skip=1000 count=100000 status=none) || fail "unaligned read differs"
expect 0 "$vhdx" read q.vhdx 268435455 1
cmp out <(pattern 021 1) || fail "read of the last byte differs"
expect 0 "$vhdx" read q.vhdx 0 0
[[ ! -s out ]] || fail "a zero-length read printed bytes"
expect 1 "$vhdx" read q.vhdx 256M 1
expect_in err "beyond the end"
expect 1 "$vhdx" read q.vhdx 1Q 1
expect_in err "invalid size '1Q'"

expect 0 "$vhdx" check q.vhdx
expect_in out "No errors were found on the image."
expect 0 "$vhdx" check --json q.vhdx
json_check out 'j["clean"]' 'j["errors"] == 0' 'j["remaining_errors"] == 0' 'j["exit_code"] == 0' \
  'j["problems"] == []' 'j["log_was_dirty"] is False'
[[ $(sha256sum q.vhdx | cut -d' ' -f1) == "$sha_before" ]] || fail "info/map/read/check modified q.vhdx"

section "convert: VHDX to raw, raw to raw, refusals"
expect 0 "$vhdx" convert -O raw q.vhdx q.raw
cmp q.raw q-by-qemu.raw || fail "vhdx convert -O raw differs from qemu-img convert"
[[ $(stat -c %s q.raw) -eq 268435456 ]] || fail "raw output has the wrong size"
[[ $(du -k q.raw | cut -f1) -lt 8192 ]] || fail "raw output is not sparse ($(du -k q.raw | cut -f1) KiB used)"
expect 1 "$vhdx" convert -O raw q.vhdx q.raw
expect_in err "vhdx: convert: q.raw: AlreadyExists"
expect_in err "--force"
cmp q.raw q-by-qemu.raw || fail "a refused convert changed the existing output"
echo garbage >q.raw
expect 0 "$vhdx" convert -O raw --force q.vhdx q.raw
cmp q.raw q-by-qemu.raw || fail "convert --force did not replace the output"
expect 1 "$vhdx" convert -O raw --force q.vhdx q.vhdx
expect_in err "same file"
ln q.vhdx q-hardlink.vhdx
ln -s q.vhdx q-symlink.vhdx
expect 1 "$vhdx" convert -O raw -f q.vhdx q-hardlink.vhdx
expect_in err "same file"
expect 1 "$vhdx" convert -O raw -f q-symlink.vhdx q.vhdx
expect_in err "same file"
expect 1 "$vhdx" convert -O vhdx -f q.vhdx ./q.vhdx
expect_in err "same file"
[[ $(sha256sum q.vhdx | cut -d' ' -f1) == "$sha_before" ]] || fail "a refused convert modified q.vhdx"
expect 1 "$vhdx" convert -O raw -t fixed q.vhdx other.raw
expect_in err "only apply to -O vhdx"
expect 0 "$vhdx" convert -O raw q.raw q-copy.raw
cmp q-copy.raw q.raw || fail "raw to raw convert differs"
[[ $(du -k q-copy.raw | cut -f1) -lt 8192 ]] || fail "raw to raw output is not sparse"
expect 0 "$vhdx" convert -p -O raw q.vhdx q-progress.raw </dev/null
[[ ! -s err ]] || fail "-p wrote to stderr although it is not a terminal"

if [[ -n $samples && -f $samples/iotest-dirtylog-10G-4M.vhdx.bz2 ]]; then
  section "samples: dirty log replayed in memory, Windows-made image"
  bzip2 -dc "$samples/iotest-dirtylog-10G-4M.vhdx.bz2" >dirty.vhdx
  dirty_sha=$(sha256sum dirty.vhdx | cut -d' ' -f1)
  expect 0 "$vhdx" info dirty.vhdx
  expect_in out "virtual size: 10 GiB (10737418240 bytes)"
  expect_in out "log: dirty (replayed in memory"
  expect 0 "$vhdx" info --json dirty.vhdx
  json_check out 'j["log"]["state"] == "replayed_in_memory"' 'j["log"]["dirty"]' 'j["block_size"] == 1 << 20'
  expect 0 "$vhdx" read dirty.vhdx 17M 1M
  cmp out <(pattern 245 $mib) || fail "dirty sample: 17M..18M must read 0xa5 after replay"
  expect 0 "$vhdx" map --json dirty.vhdx
  json_check out 'sum(e["length"] for e in j if e["data"]) == 18 << 20'
  # Unapplied log updates count as an error (exit 2) until --repair replays them.
  expect 2 "$vhdx" check dirty.vhdx
  expect_in out "ERROR: log"
  expect_in out "The log is dirty"
  expect 2 "$vhdx" check --json dirty.vhdx
  json_check out 'j["log_was_dirty"]' 'not j["clean"]' 'j["exit_code"] == 2'
  [[ $(sha256sum dirty.vhdx | cut -d' ' -f1) == "$dirty_sha" ]] || fail "read-only commands modified dirty.vhdx"
  cp dirty.vhdx repaired.vhdx
  expect 1 "$vhdx" check --repair repaired.vhdx
  expect_in out "(repaired)"
  expect_in out "The log was dirty and has been replayed."
  expect 0 "$vhdx" info --json repaired.vhdx
  json_check out 'j["log"]["state"] == "clean"' 'all(h["log_guid"] == "00000000-0000-0000-0000-000000000000" for h in j["headers"] if h["current"])'
  expect 0 "$vhdx" check repaired.vhdx
  expect_in out "No errors were found on the image."
  expect 0 "$vhdx" read repaired.vhdx 17M 1M
  cmp out <(pattern 245 $mib) || fail "dirty sample: 17M..18M must read 0xa5 after an on-disk replay"
  qemu-io -r -f vhdx -c 'read -q -P 0xa5 0 18M' -c 'read -q -P 0 18M 1M' repaired.vhdx >out 2>&1 ||
    fail "QEMU does not accept the replayed sample: $(cat out)"
  rm -f repaired.vhdx

  bzip2 -dc "$samples/iotest-dynamic-1G.vhdx.bz2" >win8.vhdx
  expect 0 "$vhdx" info win8.vhdx
  expect_in out "physical sector size: 4096"
  expect_in out "Microsoft Windows 6.2.9200.16384"
  expect 0 "$vhdx" convert -O raw win8.vhdx win8.raw
  echo "d3d112d8dab7fd360609f7d5a7b769904b7a2a7d7b6b8c535f65a23293c05478  win8.raw" | sha256sum -c --quiet ||
    fail "win8 sample: raw content sha256 differs"
  rm -f win8.raw
else
  echo "note: VHDX_SAMPLES_DIR has no samples; sample checks skipped"
fi

section "create: parameter errors"
expect 1 "$vhdx" create big.vhdx 65T
expect_in err "vhdx: create: big.vhdx: InvalidArgument: Image size too large; max of 64 TiB"
expect 1 "$vhdx" create -b 3M bs.vhdx 1G
expect_in err "Block size must be a power of two"
expect 1 "$vhdx" create -b 512K bs.vhdx 1G
expect_in err "Block size must be between 1 MiB and 256 MiB"
expect 1 "$vhdx" create -b 512M bs.vhdx 1G
expect_in err "Block size must be between 1 MiB and 256 MiB"
expect 1 "$vhdx" create --log-size 1536K ls.vhdx 1G
expect_in err "Log size must be a multiple of 1 MiB"
expect 1 "$vhdx" create --logical-sector-size 1024 lss.vhdx 1G
expect_in err "Logical sector size must be 512 or 4096"
expect 1 "$vhdx" create --logical-sector-size 4096 --physical-sector-size 512 lss.vhdx 1G
expect_in err "must not be smaller"
expect 1 "$vhdx" create odd.vhdx 1000
expect_in err "multiple of the logical sector size"
expect 1 "$vhdx" create nosize.vhdx
expect_in err "SIZE is required"
rc=0; "$vhdx" create -t sparse t.vhdx 1G >out 2>err || rc=$?; [[ $rc -ne 0 ]] || fail "-t sparse must fail"
for f in big bs ls lss odd nosize t; do [[ ! -e $f.vhdx ]] || fail "a refused create left $f.vhdx behind"; done

section "create, write, read, check with our tool; verified by QEMU"
expect 0 "$vhdx" create -b 1M own.vhdx 64M
expect_in out "Formatting 'own.vhdx'"
expect 1 "$vhdx" create own.vhdx 64M
expect_in err "vhdx: create: own.vhdx: AlreadyExists"
expect 0 "$vhdx" create --force -b 1M own.vhdx 64M
expect 0 "$vhdx" info --json own.vhdx
json_check out 'j["virtual_size"] == 64 << 20' 'j["block_size"] == 1 << 20' 'j["type"] == "dynamic"' \
  'j["logical_sector_size"] == 512' 'j["physical_sector_size"] == 4096' 'j["log"]["state"] == "clean"' \
  'j["creator"].startswith("libvhdx")' 'j["blocks"]["fully_present"] == 0'
qemu-img check -q -f vhdx own.vhdx || fail "qemu-img check rejects a fresh image"

pattern 245 $mib >a5.bin
pattern 132 4096 >5a.bin
pattern 303 $((3 * mib)) >c3.bin
expect 0 "$vhdx" write own.vhdx 0 1M <a5.bin
expect 0 "$vhdx" write own.vhdx 10M 4K <5a.bin
expect 0 "$vhdx" write own.vhdx 61M 3M <c3.bin
expect 1 "$vhdx" write own.vhdx 100 512 <5a.bin
expect_in err "must be multiples of the logical sector size 512"
expect 1 "$vhdx" write own.vhdx 0 100 <5a.bin
expect_in err "must be multiples of the logical sector size 512"
expect 1 "$vhdx" write own.vhdx 63M 2M <c3.bin
expect_in err "beyond the end"
expect 1 "$vhdx" write own.vhdx 20M 8K <5a.bin
expect_in err "stdin ended after 4096 of 8192 bytes"

expect 0 "$vhdx" read own.vhdx 10M 4K
cmp out 5a.bin || fail "read-back of the 0x5a pattern differs"
expect 0 "$vhdx" read own.vhdx 61M 3M
cmp out c3.bin || fail "read-back of the 0xc3 pattern differs"
qemu-io -r -f vhdx -c 'read -q -P 0xa5 0 1M' -c 'read -q -P 0 1M 9M' -c 'read -q -P 0x5a 10M 4k' \
  -c 'read -q -P 0 10244k 51196k' -c 'read -q -P 0xc3 61M 3M' own.vhdx >out 2>&1 ||
  fail "QEMU does not read back what vhdx wrote: $(cat out)"
qemu-img check -q -f vhdx own.vhdx || fail "qemu-img check rejects an image written by vhdx"
expect 0 "$vhdx" check own.vhdx
expect_in out "No errors were found on the image."
expect 0 "$vhdx" map --json own.vhdx
json_check out 'sorted((e["start"], e["length"]) for e in j if e["data"]) == [(0, 1<<20), (10<<20, 1<<20), (61<<20, 3<<20)]'

section "convert both ways with our tool; verified by qemu-img compare"
expect 0 "$vhdx" convert -O raw own.vhdx own.raw
qemu-img compare -q -f vhdx -F raw own.vhdx own.raw || fail "own.raw differs from own.vhdx"
expect 0 "$vhdx" convert -O vhdx own.raw own-dyn.vhdx
qemu-img compare -q -f vhdx -F vhdx own.vhdx own-dyn.vhdx || fail "raw to dynamic VHDX differs"
qemu-img check -q -f vhdx own-dyn.vhdx || fail "qemu-img check rejects own-dyn.vhdx"
expect 0 "$vhdx" info --json own-dyn.vhdx
# Zero chunks are never written: with the default 32 MiB blocks, blocks 0 and 1 hold data.
json_check out 'j["blocks"]["fully_present"] + j["blocks"]["partially_present"] == 2'
expect 0 "$vhdx" convert -O vhdx -t fixed -b 2M own.vhdx own-fixed.vhdx
qemu-img compare -q -f vhdx -F vhdx own.vhdx own-fixed.vhdx || fail "VHDX to fixed VHDX differs"
expect 0 "$vhdx" info --json own-fixed.vhdx
json_check out 'j["type"] == "fixed"' 'j["block_size"] == 2 << 20' 'j["blocks"]["fully_present"] == 32'
expect 0 "$vhdx" convert -O vhdx q.vhdx q-ours.vhdx
qemu-img compare -q -f vhdx -F vhdx q.vhdx q-ours.vhdx || fail "qemu-made VHDX to our VHDX differs"
expect 0 "$vhdx" convert -O vhdx --logical-sector-size 4096 q.vhdx q-4k.vhdx
expect 0 "$vhdx" info --json q-4k.vhdx
json_check out 'j["logical_sector_size"] == 4096' 'j["physical_sector_size"] == 4096'
expect 0 "$vhdx" convert -O raw q-4k.vhdx q-4k.raw
cmp q-4k.raw q-by-qemu.raw || fail "a 4K-sector round trip changed the content"
expect 1 "$vhdx" convert -O vhdx q.vhdx q-ours.vhdx
expect_in err "AlreadyExists"

section "differencing image"
expect 0 "$vhdx" create --parent own.vhdx child.vhdx
expect 0 "$vhdx" write child.vhdx 10M 4K <a5.bin
expect 0 "$vhdx" info --json --chain child.vhdx
json_check out 'j["type"] == "differencing"' 'j["has_parent"]' 'len(j["chain"]) == 2' \
  'j["chain"][1]["path"].endswith("own.vhdx")' 'any(p["key"] == "parent_linkage" for p in j["parent_locator"])' \
  'len(j["ancestors"]) == 1' 'j["ancestors"][0]["type"] == "dynamic"'
expect 0 "$vhdx" read child.vhdx 10M 8K
cmp out <(head -c 4096 a5.bin; head -c 4096 /dev/zero) || fail "child read does not merge child and parent"
expect 0 "$vhdx" read child.vhdx 61M 3M
cmp out c3.bin || fail "child does not show the parent's data"
expect 0 "$vhdx" convert -O raw child.vhdx child.raw
cp own.raw expected-child.raw
dd if=a5.bin of=expected-child.raw bs=4096 seek=$((10 * 256)) count=1 conv=notrunc status=none
cmp child.raw expected-child.raw || fail "a flattened child differs from the expected content"
expect 1 "$vhdx" convert -O raw -f child.vhdx own.vhdx
expect_in err "a parent of child.vhdx"
expect 0 "$vhdx" check child.vhdx
# Without --chain a child opens alone, so info works while its parent is away;
# commands that read data need the parent.
expect 0 "$vhdx" info --json child.vhdx
json_check out 'len(j["chain"]) == 1' 'j["has_parent"]' '"ancestors" not in j'
mv own.vhdx own-away.vhdx
expect 0 "$vhdx" info child.vhdx
expect_in out "type: differencing"
expect 1 "$vhdx" info --chain child.vhdx
expect_in err "vhdx: info: child.vhdx: NotFound"
expect 1 "$vhdx" map child.vhdx
expect_in err "vhdx: map: child.vhdx: NotFound"
expect 1 "$vhdx" convert -O raw child.vhdx child2.raw
expect_in err "vhdx: convert: child.vhdx: NotFound"
[[ ! -e child2.raw ]] || fail "a failed convert left child2.raw behind"
mv own-away.vhdx own.vhdx

section "check: corruption and warnings"
expect 0 "$vhdx" info --json own.vhdx
bat=$(python3 -c 'import json,sys; print([r["file_offset"] for r in json.load(open(sys.argv[1]))["regions"] if r["name"] == "BAT"][0])' out)
cp own.vhdx bad-bat.vhdx
# BAT entry 1 := FULLY_PRESENT at file offset 0 (inside the header section).
printf '\x06\x00\x00\x00\x00\x00\x00\x00' | dd of=bad-bat.vhdx bs=1 seek=$((bat + 8)) conv=notrunc status=none
expect 2 "$vhdx" check bad-bat.vhdx
expect_in out "ERROR: BAT entry 1"
expect_in out "1 errors and 0 warnings were found on the image."
expect 2 "$vhdx" check --json bad-bat.vhdx
json_check out 'not j["clean"]' 'j["errors"] == 1' 'j["remaining_errors"] == 1' 'j["exit_code"] == 2' \
  'j["problems"][0]["severity"] == "error"' 'j["problems"][0]["structure"] == "BAT entry 1"' \
  'j["problems"][0]["file_offset"] == '"$((bat + 8))"
expect 1 "$vhdx" info bad-bat.vhdx
expect_in err "vhdx: info: bad-bat.vhdx: Corruption: "
cp own.vhdx bad-header.vhdx
printf 'XXXX' | dd of=bad-header.vhdx bs=1 seek=$((0x10000 + 100)) conv=notrunc status=none
expect 0 "$vhdx" check bad-header.vhdx
expect_in out "Warning: header 1"
expect 0 "$vhdx" check --json bad-header.vhdx
json_check out 'j["clean"]' 'j["errors"] == 0' 'j["warnings"] >= 1' 'j["exit_code"] == 0'

echo "PASS: test_cli.sh"
