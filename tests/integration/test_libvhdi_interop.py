#!/usr/bin/python3
"""Interoperability of libvhdx with libvhdi (Debian python3-libvhdi).

Acceptance test: for every type (fixed, dynamic) x block size (1, 2, 32,
256 MiB) x sector size (logical/physical 512/512, 512/4096, 4096/4096,
4096/512) combination, images created by libvhdx are read by libvhdi with the
right media size and sector size and exactly the content we expect, both
fresh and after seeded random writes (and write-zeroes) through libvhdx.
libvhdi is the only independent reader here that accepts 4096-byte logical
sectors (QEMU 7.2 refuses them).

Also: QEMU-made images that libvhdx then wrote are read identically by libvhdi.

The library is driven through tests/tools/vhdx_testdriver (public API only).
pyvhdi is importable only with /usr/bin/python3 (Debian package).
Environment: VHDX_BUILD_DIR (holds vhdx_testdriver).
"""

import os
import shutil
import sys
import time
import unittest

try:
    import pyvhdi
except ImportError:  # reported as a skip below
    pyvhdi = None

from interop_util import DRIVER, MiB, driver, make_raw, run, scratch_dir

# Several blocks each; not a multiple of the block size nor of 1 MiB (but a
# multiple of 4096 so that every sector size works): the last block is partial.
SIZES = {
    1 * MiB: 20 * MiB + 12288,
    2 * MiB: 20 * MiB + 12288,
    32 * MiB: 100 * MiB + 12288,
    256 * MiB: 520 * MiB + 12288,
}
SECTOR_SIZES = [(512, 512), (512, 4096), (4096, 4096), (4096, 512)]
CHUNK = 4 * MiB


def libvhdi_diff(img, raw, lss):
    """Reads `img` fully through libvhdi and compares it with `raw`.

    Returns None when identical, else a description of the first difference.
    Also checks media size and bytes per sector."""
    size = os.path.getsize(raw)
    f = pyvhdi.file()
    f.open(img)
    try:
        if f.media_size != size:
            return "libvhdi media_size %d, expected %d" % (f.media_size, size)
        if f.bytes_per_sector != lss:
            return "libvhdi bytes_per_sector %d, expected %d" % (f.bytes_per_sector, lss)
        with open(raw, "rb") as r:
            off = 0
            # Unaligned chunk boundaries too: the last read is a partial one.
            while off < size:
                n = min(CHUNK, size - off)
                got = f.read_buffer_at_offset(n, off)
                want = r.read(n)
                if got != want:
                    if got is None or len(got) != n:
                        return "libvhdi short read at %d: %s bytes of %d" % (off, None if got is None else len(got), n)
                    i = next(i for i in range(n) if got[i] != want[i])
                    return "content differs at offset %d (0x%x): libvhdi 0x%02x, expected 0x%02x" % (
                        off + i, off + i, got[i], want[i])
                off += n
            # An odd-sized read crossing a block boundary through seek + read.
            if size > 2 * MiB:
                f.seek_offset(MiB - 1000)
                got = f.read_buffer(3000)
                r.seek(MiB - 1000)
                if got != r.read(3000):
                    return "unaligned read across 1 MiB differs"
    finally:
        f.close()
    return None


def raw_data_extents(raw):
    """(offset, length) of the data parts of a sparse file (SEEK_DATA/HOLE)."""
    out = []
    size = os.path.getsize(raw)
    fd = os.open(raw, os.O_RDONLY)
    try:
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after pos
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            out.append((start, end - start))
            pos = end
    finally:
        os.close(fd)
    return out


def libvhdi_diff_sparse(img, raw, lss, seed):
    """Like libvhdi_diff for multi-GiB sparse disks: compares the data parts
    of `raw` plus 200 seeded random 64 KiB windows anywhere."""
    import random
    size = os.path.getsize(raw)
    rng = random.Random(seed)
    ranges = raw_data_extents(raw)
    if not ranges:
        return "the expected raw file holds no data: nothing was written"
    ranges += [(rng.randrange(0, size - 65536), 65536) for _ in range(200)]
    f = pyvhdi.file()
    f.open(img)
    try:
        if f.media_size != size:
            return "libvhdi media_size %d, expected %d" % (f.media_size, size)
        if f.bytes_per_sector != lss:
            return "libvhdi bytes_per_sector %d, expected %d" % (f.bytes_per_sector, lss)
        with open(raw, "rb") as r:
            for start, length in ranges:
                for off in range(start, start + length, CHUNK):
                    n = min(CHUNK, start + length - off)
                    got = f.read_buffer_at_offset(n, off)
                    r.seek(off)
                    want = r.read(n)
                    if got != want:
                        i = next((i for i in range(min(len(got or b""), n)) if got[i] != want[i]), 0)
                        return "content differs at offset %d (0x%x)" % (off + i, off + i)
    finally:
        f.close()
    return None


class LibvhdiInteropTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if pyvhdi is None:
            raise unittest.SkipTest("pyvhdi not importable (needs /usr/bin/python3 and python3-libvhdi)")
        if not os.path.exists(DRIVER):
            raise unittest.SkipTest("vhdx_testdriver not built at %s" % DRIVER)

    def setUp(self):
        self.tmp = scratch_dir("vhdx-libvhdi-interop.")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def p(self, name):
        """A path in the scratch directory, removed first if a failed earlier
        subtest left it behind (random-writes extends an existing model)."""
        path = os.path.join(self.tmp, name)
        if os.path.exists(path):
            os.remove(path)
        return path

    def test_our_images_read_by_libvhdi(self):
        for typ in ("dynamic", "fixed"):
            for bs in (1 * MiB, 2 * MiB, 32 * MiB, 256 * MiB):
                for lss, pss in SECTOR_SIZES:
                    what = "%s bs=%dM lss=%d pss=%d" % (typ, bs // MiB, lss, pss)
                    with self.subTest(what):
                        self._one(typ, bs, lss, pss, what)

    def _one(self, typ, bs, lss, pss, what):
        size = SIZES[bs]
        img, raw = self.p("o.vhdx"), self.p("expected.raw")
        p = driver("create", img, size, "--type", typ, "--block-size", bs, "--lss", lss, "--pss", pss, check=False)
        self.assertEqual(p.returncode, 0, "%s: create failed: %s" % (what, p.stderr))
        make_raw(raw, size)
        # Fresh images: only the cheap ones (a fresh fixed image is all zeros
        # on disk, so reading it is cheap too, but 256 MiB blocks are large).
        if bs <= 32 * MiB:
            self.assertIsNone(libvhdi_diff(img, raw, lss), what + " (fresh)")
        seed = (bs // MiB) * 100 + lss // 512 * 10 + pss // 512 + (7 if typ == "fixed" else 0)
        driver("random-writes", img, seed, 40, min(3 * bs, 5 * MiB), raw, "--zeroes", "--trims", "--flush-every", 9)
        self.assertIsNone(libvhdi_diff(img, raw, lss), what + " (after writes)")
        # Our own read agrees as well.
        p = driver("compare", img, raw, check=False)
        self.assertEqual(p.returncode, 0, "%s: %s" % (what, p.stdout))
        os.remove(img)
        os.remove(raw)

    def test_large_sparse_disks_across_chunks(self):
        """A chunk (the span one sector-bitmap entry in the BAT covers) is
        4 GiB at 512-byte sectors and 32 GiB at 4096: writes straddling chunk
        boundaries in 10 GiB and 40 GiB disks read back through libvhdi."""
        for lss, size, bs, hot in ((512, 10 * 1024 * MiB + 12288, 1 * MiB, [4096 * MiB, 8192 * MiB]),
                                   (4096, 40 * 1024 * MiB + 12288, 32 * MiB, [32768 * MiB]),
                                   (4096, 40 * 1024 * MiB + 12288, 1 * MiB, [32768 * MiB])):
            what = "%d GiB lss=%d bs=%dM" % (size >> 30, lss, bs // MiB)
            with self.subTest(what):
                img, raw = self.p("big.vhdx"), self.p("big.raw")
                driver("create", img, size, "--block-size", bs, "--lss", lss, "--pss", 4096)
                args = ["random-writes", img, lss + bs // MiB, 30, 2 * MiB, raw, "--zeroes", "--trims"]
                for h in hot + [size - 4096]:
                    args += ["--hot", h]
                driver(*args)
                self.assertIsNone(libvhdi_diff_sparse(img, raw, lss, what), what)
                p = driver("compare", img, raw, check=False)
                self.assertEqual(p.returncode, 0, "%s: %s" % (what, p.stdout))
                os.remove(img)
                os.remove(raw)

    def test_qemu_made_then_ours_read_by_libvhdi(self):
        if shutil.which("qemu-img") is None:
            self.skipTest("qemu-img not installed")
        for sub, extra in (("dynamic", []), ("fixed", []), ("fixed", ["block_state_zero=off"])):
            what = "qemu %s %s" % (sub, ",".join(extra) or "default")
            with self.subTest(what):
                size = 40 * MiB + 12288
                img, raw = self.p("q.vhdx"), self.p("q.raw")
                opts = ",".join(["subformat=" + sub, "block_size=%d" % (2 * MiB)] + extra)
                run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", opts, img, size])
                run(["qemu-io", "-f", "vhdx", "-t", "unsafe", "-c", "write -P 0x3c 3M 5M",
                     "-c", "write -P 0xc3 %d 4096" % (size - 4096), img])
                run(["qemu-img", "convert", "-f", "vhdx", "-O", "raw", img, raw])
                self.assertIsNone(libvhdi_diff(img, raw, 512), what + " (QEMU-written)")
                driver("random-writes", img, 4242, 30, 3 * MiB, raw, "--zeroes", "--trims")
                self.assertIsNone(libvhdi_diff(img, raw, 512), what + " (after our writes)")
                os.remove(img)
                os.remove(raw)


if __name__ == "__main__":
    start = time.time()
    result = unittest.main(exit=False, verbosity=2).result
    print("test_libvhdi_interop: %d run, %d failures, %d errors, %d skipped in %.1f s" %
          (result.testsRun, len(result.failures), len(result.errors), len(result.skipped), time.time() - start))
    sys.exit(0 if result.wasSuccessful() else 1)
