#!/usr/bin/env bash
# End-to-end: create, write, discard, write-zeroes-by-compact, resize and
# merge through the `vhdx` tool; after every step QEMU must find the image
# clean and byte-identical to the expected raw content.
set -euo pipefail
BUILD=${VHDX_BUILD_DIR:-build}
VHDX="$BUILD/vhdx"
WORK=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

img=$WORK/disk.vhdx
raw=$WORK/expected.raw

# Seeded pattern of N bytes.
pattern() { /usr/bin/python3 -c "import random,sys; r=random.Random($1); sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range($2)))"; }
# Applies bytes from stdin to the expected raw file at OFFSET.
model_write() { dd of="$raw" bs=1 seek="$1" conv=notrunc status=none; }
model_zero() { head -c "$2" /dev/zero | model_write "$1"; }
verify() {
  qemu-img check -q "$img" || fail "qemu-img check after $1"
  "$VHDX" check "$img" > /dev/null || fail "vhdx check after $1"
  qemu-img compare -q -f vhdx -F raw "$img" "$raw" || fail "content differs after $1"
  echo "ok: $1"
}

"$VHDX" create -b 1M "$img" 64M > /dev/null
truncate -s 64M "$raw"
verify create

# Scattered writes, some crossing block boundaries.
for i in 0 1 2 3 4 5 6 7; do
  off=$(( (i * 7340033) / 512 * 512 ))
  pattern $i 300032 > "$WORK/p"
  "$VHDX" write "$img" "$off" 300032 < "$WORK/p"
  model_write "$off" < "$WORK/p"
done
verify write

# Discard a whole block, a partial range and a range spanning two blocks.
"$VHDX" discard "$img" 7M 1M;                 model_zero $((7 << 20)) $((1 << 20))
"$VHDX" discard "$img" $((14 << 20)) 4096;    model_zero $((14 << 20)) 4096
"$VHDX" discard "$img" $(((21 << 20) - 2048)) 4096; model_zero $(((21 << 20) - 2048)) 4096
verify discard

size_before=$(stat -c %s "$img")
"$VHDX" compact "$img" > "$WORK/compact.out"
grep -q "given back" "$WORK/compact.out" || fail "compact did not report"
verify compact
[ "$(stat -c %s "$img")" -le "$size_before" ] || fail "compact grew the file"

# Grow (BAT relocation at 256 GiB with 1 MiB blocks), write beyond the old end.
"$VHDX" resize "$img" 256G > /dev/null
truncate -s 256G "$raw"
pattern 99 65536 > "$WORK/p"
"$VHDX" write "$img" $((200 << 30)) 65536 < "$WORK/p"
model_write $((200 << 30)) < "$WORK/p"
"$VHDX" info "$img" | grep -qi "256 GiB" || fail "info does not show the new size"
verify "resize grow"

# Shrinking below allocated data is refused; allowed explicitly it works.
if "$VHDX" resize "$img" 32M 2> "$WORK/err"; then fail "shrink over data was not refused"; fi
grep -qi "minimum" "$WORK/err" || fail "refusal does not name the minimum size"
"$VHDX" resize --allow-data-loss "$img" 48M > /dev/null
truncate -s 48M "$raw"
verify "resize shrink"

# Differencing: child writes, then merge into the parent.
child=$WORK/child.avhdx
"$VHDX" create --parent "$img" "$child" > /dev/null
pattern 7 8192 > "$WORK/p"
"$VHDX" write "$child" 4096 8192 < "$WORK/p"
model_write 4096 < "$WORK/p"
"$VHDX" convert -O raw "$child" "$WORK/flat.raw"
cmp "$WORK/flat.raw" "$raw" || fail "flattened child differs"
"$VHDX" merge "$child" > /dev/null
verify merge
# The child still opens after the merge (its parent_linkage2 names the
# parent's new identity) and reads the same content.
"$VHDX" convert -O raw "$child" "$WORK/flat2.raw"
cmp "$WORK/flat2.raw" "$raw" || fail "child reads differently after the merge"
# info --chain names the linkage that accepted the merged parent.
"$VHDX" info --json --chain "$child" > "$WORK/info.json"
/usr/bin/python3 - "$WORK/info.json" <<'PY' || fail "info --chain does not report the merged link"
import json, sys
chain = json.load(open(sys.argv[1]))["chain"]
assert len(chain) == 2, chain
assert chain[0]["parent_match"] == "parent_linkage2", chain[0]
assert chain[0]["log"] == "clean" and chain[1]["parent_match"] == "none", chain
assert chain[0]["virtual_size"] == chain[1]["virtual_size"] > 0, chain
PY
"$VHDX" info --chain "$child" | grep -q "parent matches parent_linkage2" || fail "info --chain text lacks the linkage"

# set-parent: the parent moves; the child is re-pointed at it.
child2=$WORK/child2.avhdx
"$VHDX" create --parent "$img" "$child2" > /dev/null
pattern 8 4096 > "$WORK/p"
"$VHDX" write "$child2" $((1 << 20)) 4096 < "$WORK/p"
cp "$raw" "$WORK/expected2.raw"
dd if="$WORK/p" of="$WORK/expected2.raw" bs=1 seek=$((1 << 20)) conv=notrunc status=none
mkdir -p "$WORK/moved"
mv "$img" "$WORK/moved/base.vhdx"
if "$VHDX" read "$child2" 0 512 > /dev/null 2>&1; then fail "child read without its parent"; fi
"$VHDX" set-parent "$child2" "$WORK/moved/base.vhdx"
"$VHDX" convert -O raw "$child2" "$WORK/flat3.raw"
cmp "$WORK/flat3.raw" "$WORK/expected2.raw" || fail "re-parented child reads wrong data"
"$VHDX" info --json "$child2" | grep -q 'moved' || fail "locator does not name the new parent"
# A different image is refused as parent unless the mismatch is accepted.
"$VHDX" create "$WORK/other.vhdx" 48M > /dev/null
if "$VHDX" set-parent "$child2" "$WORK/other.vhdx" 2> "$WORK/err"; then fail "unrelated parent accepted"; fi
grep -q "ignore-id-mismatch" "$WORK/err" || fail "refusal does not mention --ignore-id-mismatch"
"$VHDX" set-parent --ignore-id-mismatch "$child2" "$WORK/other.vhdx"
"$VHDX" check "$child2" > /dev/null || fail "check after forced set-parent"
echo "ok: set-parent"
echo "all edit-command checks passed"
