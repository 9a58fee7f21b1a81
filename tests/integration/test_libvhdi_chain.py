#!/usr/bin/python3
"""libvhdi (pyvhdi) reads the differencing chains we write exactly as we do.

Chains of depth >= 3 (512- and 4096-byte logical sectors) are built with the
`vhdx` tool: seeded random writes at every level (short sector runs, whole
blocks, writes across block boundaries, write-zeroes), each level closed before
its child is created. The top image is then read three ways and compared:

  * a flat model of every write (Python),
  * our reader (`vhdx convert -O raw`),
  * libvhdi, with each parent attached through set_parent (libvhdi checks the
    child's parent_linkage against the parent's identity when it does).

The chain is then moved to another directory and read again (relative paths),
and libvhdi must refuse a parent that is not the linked one.

Environment (set by tests/CMakeLists.txt): VHDX_BUILD_DIR holds ./vhdx.
"""

import os
import random
import shutil
import subprocess
import sys
import tempfile

try:
    import pyvhdi
except ImportError:  # pragma: no cover - depends on the host
    print("SKIP: pyvhdi (python3-libvhdi) is not installed")
    sys.exit(0)

BUILD = os.environ.get("VHDX_BUILD_DIR")
if not BUILD:
    sys.exit("VHDX_BUILD_DIR must point at the build directory")
VHDX = os.path.join(BUILD, "vhdx")
if not os.access(VHDX, os.X_OK):
    sys.exit(f"FAIL: {VHDX} is missing")

MiB = 1 << 20


def run(*args, stdin=None):
    p = subprocess.run([VHDX, *map(str, args)], input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, check=False)
    if p.returncode != 0:
        sys.exit(f"FAIL: vhdx {' '.join(map(str, args))} exited with {p.returncode}: "
                 f"{p.stderr.decode(errors='replace').strip()}")
    return p.stdout


class Chain:
    """Builds a chain with the tool and keeps the flat model in step."""

    def __init__(self, directory, size, block_size, lss, seed):
        self.dir = directory
        self.size = size
        self.block_size = block_size
        self.lss = lss
        self.rng = random.Random(seed)
        self.model = bytearray(size)
        self.paths = []

    def add_level(self, writes):
        level = len(self.paths)
        path = os.path.join(self.dir, f"level{level}.vhdx" if level == 0 else f"level{level}.avhdx"
                            if level % 2 == 0 else f"level{level}.vhdx")
        if level == 0:
            run("create", "-b", self.block_size, "--logical-sector-size", self.lss, path, self.size)
        else:
            run("create", "--parent", self.paths[-1], path)
        self.paths.append(path)
        for _ in range(writes):
            self.random_write(path)
        return path

    def write(self, path, offset, data):
        run("write", path, offset, len(data), stdin=bytes(data))
        self.model[offset:offset + len(data)] = data

    def random_write(self, path):
        r, lss, bs = self.rng, self.lss, self.block_size
        sectors, spb = self.size // lss, bs // lss
        kind = r.randrange(5)
        if kind <= 1:  # short run of sectors
            s = r.randrange(sectors)
            n = r.randint(1, 48)
        elif kind == 2:  # a whole block
            s = r.randrange(sectors // spb) * spb
            n = spb
        elif kind == 3:  # across a block boundary
            b = r.randrange(1, sectors // spb)
            k = r.randint(1, 8)
            s, n = b * spb - k, k + r.randint(1, 8)
        else:  # zeros over part of a block (hides the parent like data)
            s = r.randrange(sectors)
            n = r.randint(1, 16)
            n = min(n, sectors - s)
            self.write(path, s * lss, bytes(n * lss))
            return
        n = min(n, sectors - s)
        self.write(path, s * lss, r.randbytes(n * lss))


def read_ours(path, tmpdir):
    raw = os.path.join(tmpdir, "ours.raw")
    run("convert", "-O", "raw", "-f", path, raw)
    with open(raw, "rb") as f:
        data = f.read()
    os.unlink(raw)
    return data


def open_libvhdi_chain(paths):
    """Opens every file with pyvhdi, attaching each to its parent."""
    files = []
    for i, path in enumerate(paths):
        f = pyvhdi.file()
        f.open(path)
        if i > 0:
            f.set_parent(files[-1])
        files.append(f)
    return files


def read_libvhdi(paths):
    files = open_libvhdi_chain(paths)
    top = files[-1]
    size = top.get_media_size()
    out = bytearray()
    offset = 0
    while offset < size:
        n = min(4 * MiB, size - offset)
        chunk = top.read_buffer_at_offset(n, offset)
        if len(chunk) != n:
            sys.exit(f"FAIL: libvhdi returned {len(chunk)} bytes at {offset}, wanted {n}")
        out += chunk
        offset += n
    for f in reversed(files):
        f.close()
    return bytes(out)


def first_difference(a, b, lss):
    for s in range(0, min(len(a), len(b)), lss):
        if a[s:s + lss] != b[s:s + lss]:
            return s
    return min(len(a), len(b))


def compare(what, got, want, lss):
    if len(got) != len(want):
        sys.exit(f"FAIL: {what}: {len(got)} bytes, expected {len(want)}")
    if got != want:
        off = first_difference(got, want, lss)
        sys.exit(f"FAIL: {what}: differs first at byte {off} (sector {off // lss})")


def check_chain(tmp, lss, block_size, depth, seed):
    d = os.path.join(tmp, f"chain-{lss}")
    os.makedirs(d)
    chain = Chain(d, 24 * MiB, block_size, lss, seed)
    chain.add_level(20)
    for _ in range(depth):
        chain.add_level(15)
    want = bytes(chain.model)

    ours = read_ours(chain.paths[-1], tmp)
    compare(f"lss {lss}: our reading of the chain", ours, want, lss)

    # libvhdi sees the same geometry and the linkage we wrote.
    files = open_libvhdi_chain(chain.paths)
    for i, f in enumerate(files):
        if f.get_bytes_per_sector() != lss:
            sys.exit(f"FAIL: libvhdi: {chain.paths[i]}: {f.get_bytes_per_sector()} bytes per sector")
        if f.get_media_size() != 24 * MiB:
            sys.exit(f"FAIL: libvhdi: {chain.paths[i]}: media size {f.get_media_size()}")
        if i > 0:
            # parent_linkage as libvhdi reads it is the parent's identity.
            want_id = files[i - 1].get_identifier()
            if (f.get_parent_identifier() or "").lower() != (want_id or "").lower():
                sys.exit(f"FAIL: libvhdi: parent identifier of {chain.paths[i]} is "
                         f"{f.get_parent_identifier()}, the parent's identifier {want_id}")
            # libvhdi 20210425 takes the parent file name only from
            # absolute_win32_path or volume_path, never from relative_path; on
            # a POSIX host we can know neither (see src/image/create.cc), so
            # there is none, or it must name the parent.
            parent_name = f.get_parent_filename()
            if parent_name is not None and not parent_name.replace("\\", "/").endswith(
                    "/" + os.path.basename(chain.paths[i - 1])):
                sys.exit(f"FAIL: libvhdi: parent filename of {chain.paths[i]} is {parent_name!r}")
    for f in reversed(files):
        f.close()

    theirs = read_libvhdi(chain.paths)
    compare(f"lss {lss}: libvhdi reading of the chain", theirs, want, lss)
    # Every intermediate level too.
    for level in range(1, depth):
        mid = read_libvhdi(chain.paths[:level + 1])
        compare(f"lss {lss}: level {level}: libvhdi vs ours", mid, read_ours(chain.paths[level], tmp), lss)

    # The chain moved together to another directory still opens (relative
    # paths), for us and for libvhdi.
    moved = os.path.join(tmp, f"moved-{lss}", "sub")
    os.makedirs(os.path.dirname(moved))
    shutil.move(d, moved)
    paths = [os.path.join(moved, os.path.basename(p)) for p in chain.paths]
    compare(f"lss {lss}: our reading after the move", read_ours(paths[-1], tmp), want, lss)
    compare(f"lss {lss}: libvhdi reading after the move", read_libvhdi(paths), want, lss)

    # libvhdi checks the linkage: a parent that is not the linked one is refused.
    stranger = os.path.join(tmp, f"stranger-{lss}.vhdx")
    run("create", "-b", block_size, "--logical-sector-size", lss, stranger, 24 * MiB)
    p = pyvhdi.file()
    p.open(stranger)
    c = pyvhdi.file()
    c.open(paths[1])
    try:
        c.set_parent(p)
    except (IOError, OSError):
        pass
    else:
        sys.exit("FAIL: libvhdi accepted a parent whose DataWriteGuid is not the child's parent_linkage")
    c.close()
    p.close()
    print(f"ok: lss {lss}, block size {block_size}, depth {depth}: libvhdi and vhdx agree")


def main():
    tmp = tempfile.mkdtemp(prefix="vhdx-libvhdi-chain.")
    try:
        check_chain(tmp, 512, 1 * MiB, 3, 1234)
        check_chain(tmp, 4096, 2 * MiB, 4, 5678)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
