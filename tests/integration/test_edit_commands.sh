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
echo "all edit-command checks passed"
