#!/usr/bin/python3
"""Interoperability of libvhdx with QEMU (qemu-img / qemu-io, Debian 7.2).

Acceptance tests of two issues:

* Images made by `qemu-img create` (fixed with and without ZERO block states,
  dynamic; several block sizes) and filled by `qemu-io` with patterns at
  seeded random offsets read back through libvhdx exactly as
  `qemu-img convert -O raw` reads them.
* Images libvhdx creates (512-byte logical sectors; QEMU refuses 4096) pass
  `qemu-img check`, report the right virtual size, open read-only in QEMU
  (a clean log), and after seeded random writes through libvhdx
  `qemu-img compare` against the expected raw content reports identical.
  Images QEMU created and wrote, then libvhdx wrote, then QEMU wrote again
  read back identically in both.

The library is driven through tests/tools/vhdx_testdriver (public API only).
Environment: VHDX_BUILD_DIR (holds vhdx_testdriver). Deterministic seeds;
everything happens in a temporary directory that is removed at the end.
"""

import json
import os
import random
import shutil
import sys
import time
import unittest

from interop_util import DRIVER, MiB, TIMINGS, driver, make_raw, run, scratch_dir

# Virtual sizes per block size: several blocks each, and deliberately not a
# multiple of the block size (nor of 1 MiB) so that the last block is partial.
SIZES = {
    1 * MiB: 20 * MiB + 12288,
    2 * MiB: 20 * MiB + 12288,
    8 * MiB: 40 * MiB + 12288,
    32 * MiB: 100 * MiB + 12288,
    256 * MiB: 520 * MiB + 12288,
}


def files_equal(a, b):
    """Byte comparison of two (possibly sparse) files; returns a message or None."""
    sa, sb = os.path.getsize(a), os.path.getsize(b)
    if sa != sb:
        return "sizes differ: %s=%d %s=%d" % (a, sa, b, sb)
    with open(a, "rb") as fa, open(b, "rb") as fb:
        off = 0
        while True:
            x = fa.read(4 * MiB)
            y = fb.read(4 * MiB)
            if x != y:
                i = next(i for i in range(min(len(x), len(y))) if x[i] != y[i])
                return "content differs at offset %d (0x%x): %s has 0x%02x, %s has 0x%02x" % (
                    off + i, off + i, a, x[i], b, y[i])
            if not x:
                return None
            off += len(x)


def qemu_random_ops(rng, size, count, max_len):
    """Seeded qemu-io ops: (kind, offset, length, pattern byte), 512-aligned."""
    ops = []
    sectors = size // 512
    for _ in range(count):
        length = rng.randint(1, max_len // 512) * 512
        length = min(length, size)
        offset = rng.randrange(0, sectors - length // 512 + 1) * 512
        if rng.random() < 0.1:
            ops.append(("zero", offset, length, 0))
        else:
            ops.append(("write", offset, length, rng.randint(1, 255)))
    return ops


def qemu_io_apply(path, ops, model=None, fmt="vhdx"):
    """Applies ops through one qemu-io invocation (and to the model file)."""
    cmds = []
    for kind, off, length, pat in ops:
        if kind == "zero":
            cmds += ["-c", "write -z %d %d" % (off, length)]
        else:
            cmds += ["-c", "write -P 0x%02x %d %d" % (pat, off, length)]
    p = run(["qemu-io", "-f", fmt, "-t", "unsafe"] + cmds + [path])
    if "error" in p.stdout.lower() or "fail" in p.stdout.lower():
        raise AssertionError("qemu-io reported a problem:\n" + p.stdout[-3000:])
    if model is not None:
        with open(model, "r+b") as f:
            for kind, off, length, pat in ops:
                f.seek(off)
                f.write(bytes([pat]) * length)


def qemu_info(path):
    return json.loads(run(["qemu-img", "info", "--output=json", "-f", "vhdx", path]).stdout)


def qemu_check(testcase, path, what):
    p = run(["qemu-img", "check", "-f", "vhdx", path], check=False)
    testcase.assertEqual(p.returncode, 0, "%s: qemu-img check failed:\n%s%s" % (what, p.stdout, p.stderr))
    testcase.assertIn("No errors were found", p.stdout, "%s: %s" % (what, p.stdout))
    testcase.assertEqual(p.stderr.strip(), "", "%s: qemu-img check stderr" % what)


def qemu_compare(testcase, img, raw, what):
    p = run(["qemu-img", "compare", "-f", "vhdx", "-F", "raw", img, raw], check=False)
    testcase.assertEqual(p.returncode, 0, "%s: qemu-img compare: %s%s" % (what, p.stdout, p.stderr))
    testcase.assertIn("Images are identical", p.stdout, what)


def our_compare(testcase, img, raw, what):
    p = driver("compare", img, raw, check=False)
    testcase.assertEqual(p.returncode, 0, "%s: libvhdx read differs: %s%s" % (what, p.stdout, p.stderr))


def our_check(testcase, img, what):
    p = driver("check", img, check=False)
    testcase.assertEqual(p.returncode, 0, "%s: CheckImage not clean:\n%s%s" % (what, p.stdout, p.stderr))


class QemuInteropTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(DRIVER):
            raise unittest.SkipTest("vhdx_testdriver not built at %s" % DRIVER)
        for tool in ("qemu-img", "qemu-io"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest("%s not installed" % tool)

    def setUp(self):
        self.tmp = scratch_dir("vhdx-qemu-interop.")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def p(self, name):
        """A path in the scratch directory, removed first if a failed earlier
        subtest left it behind (random-writes extends an existing model)."""
        path = os.path.join(self.tmp, name)
        if os.path.exists(path):
            os.remove(path)
        return path

    # -- QEMU writes, we read -------------------------------------------------

    def test_qemu_images_read_identically(self):
        """qemu-img create + qemu-io random patterns -> our read == qemu-img convert."""
        variants = [
            ("dynamic", []),
            ("fixed", []),  # QEMU default: ZERO block states, preallocated file
            ("fixed", ["block_state_zero=off"]),
        ]
        for bs in (1 * MiB, 8 * MiB, 32 * MiB, 256 * MiB):
            for sub, extra in variants:
                what = "qemu %s %s bs=%dM" % (sub, ",".join(extra) or "default", bs // MiB)
                with self.subTest(what):
                    size = SIZES[bs]
                    img, raw_q, raw_o = self.p("q.vhdx"), self.p("q.raw"), self.p("o.raw")
                    opts = ["subformat=" + sub, "block_size=%d" % bs] + extra
                    run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", ",".join(opts), img, str(size)])
                    rng = random.Random("qemu-read-%s-%s-%d" % (sub, extra, bs))
                    qemu_io_apply(img, qemu_random_ops(rng, size, 14, min(3 * bs, 5 * MiB)))
                    # Also a write that exactly covers one whole block.
                    qemu_io_apply(img, [("write", bs, bs if bs <= 32 * MiB else MiB, 0x5a)])
                    run(["qemu-img", "convert", "-f", "vhdx", "-O", "raw", img, raw_q])
                    driver("to-raw", img, raw_o)
                    self.assertIsNone(files_equal(raw_o, raw_q), what)
                    info = dict(l.split("=", 1) for l in driver("info", img).stdout.split())
                    self.assertEqual(int(info["virtual_size"]), size, what)
                    self.assertEqual(int(info["block_size"]), bs, what)
                    our_check(self, img, what)
                    for f in (img, raw_q, raw_o):
                        os.remove(f)

    # -- we write, QEMU reads -------------------------------------------------

    def test_our_images_pass_qemu(self):
        """Our images (lss 512): qemu-img check, info, read-only open, compare after writes."""
        for typ in ("dynamic", "fixed"):
            for bs in (1 * MiB, 2 * MiB, 32 * MiB, 256 * MiB):
                for pss in (512, 4096):
                    what = "ours %s bs=%dM lss=512 pss=%d" % (typ, bs // MiB, pss)
                    with self.subTest(what):
                        self._check_our_image(typ, bs, pss, what)

    def _check_our_image(self, typ, bs, pss, what):
        size = SIZES[bs]
        img, raw = self.p("o.vhdx"), self.p("expected.raw")
        driver("create", img, size, "--type", typ, "--block-size", bs, "--lss", 512, "--pss", pss)
        qemu_check(self, img, what + " (fresh)")
        info = qemu_info(img)
        self.assertEqual(info["virtual-size"], size, what)
        self.assertEqual(info.get("cluster-size"), bs, what)
        make_raw(raw, size)
        qemu_compare(self, img, raw, what + " (fresh)")

        seed = (bs // MiB) * 10 + (pss // 512) + (100 if typ == "fixed" else 0)
        driver("random-writes", img, seed, 40, min(3 * bs, 5 * MiB), raw, "--zeroes", "--trims", "--flush-every", 7)
        qemu_check(self, img, what + " (after writes)")
        self.assertEqual(qemu_info(img)["virtual-size"], size, what)
        qemu_compare(self, img, raw, what + " (after writes)")
        our_compare(self, img, raw, what)
        our_check(self, img, what)

        # A cleanly closed image opens read-only in QEMU; QEMU refuses a
        # read-only open when the log needs replaying.
        p = run(["qemu-io", "-r", "-f", "vhdx", "-c", "read 0 64k", "-c", "read %d 512" % (size - 512), img],
                check=False)
        self.assertEqual(p.returncode, 0, "%s: qemu-io -r: %s%s" % (what, p.stdout, p.stderr))
        self.assertNotIn("log", (p.stdout + p.stderr).lower(), what)
        self.assertEqual(p.stderr.strip(), "", what)

        # Our log is clean after Close(): LogGuid zero in both headers.
        info = dict(l.split("=", 1) for l in driver("info", img).stdout.split())
        for h in ("header1_log_guid", "header2_log_guid"):
            self.assertEqual(info[h], "00000000-0000-0000-0000-000000000000", what + " " + h)
        os.remove(img)
        os.remove(raw)

    def test_large_sparse_disks_across_chunks(self):
        """Disks over 4 GiB: the BAT interleaves sector-bitmap entries every
        chunk (4 GiB at 512-byte sectors), so block N's entry is not at index
        N. Writes straddle the chunk boundaries, both ways between QEMU and us."""
        size = 10 * 1024 * MiB + 12288
        hot = [4096 * MiB, 8192 * MiB, size - 4096]
        for bs in (1 * MiB, 8 * MiB):
            what = "ours 10G dynamic bs=%dM" % (bs // MiB)
            with self.subTest(what):
                img, raw = self.p("big.vhdx"), self.p("big.raw")
                driver("create", img, size, "--block-size", bs, "--pss", 512)
                args = ["random-writes", img, 55 + bs // MiB, 40, 3 * MiB, raw, "--zeroes", "--trims"]
                for h in hot:
                    args += ["--hot", h]
                driver(*args)
                qemu_check(self, img, what)
                qemu_compare(self, img, raw, what)
                our_compare(self, img, raw, what)
                os.remove(img)
                os.remove(raw)
        what = "qemu 10G dynamic bs=8M"
        with self.subTest(what):
            img, raw = self.p("qbig.vhdx"), self.p("qbig.raw")
            run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=%d" % (8 * MiB), img, str(size)])
            make_raw(raw, size)
            rng = random.Random("qemu-big")
            ops = [("write", h - 12 * 1024, 40 * 1024, 0x40 + i) for i, h in enumerate(hot[:2])]
            ops += qemu_random_ops(rng, size, 12, 3 * MiB)
            qemu_io_apply(img, ops, raw)
            our_compare(self, img, raw, what + " (QEMU-written)")
            args = ["random-writes", img, 99, 30, 3 * MiB, raw, "--zeroes", "--trims"]
            for h in hot:
                args += ["--hot", h]
            driver(*args)
            qemu_check(self, img, what + " (after us)")
            qemu_compare(self, img, raw, what + " (after us)")
            our_check(self, img, what)

    def test_unmapped_blocks_with_soft_anchors(self):
        """Trim(kUnmapKeepSpace) leaves whole blocks UNMAPPED with their file
        offset kept as a soft anchor: QEMU must read them as zeros, its check
        must accept them, and QEMU writing there afterwards must work."""
        size = 20 * MiB
        img, raw = self.p("u.vhdx"), self.p("u.raw")
        driver("create", img, size, "--block-size", MiB, "--pss", 512)
        driver("write", img, 0, size, 0x11)
        driver("trim", img, 3 * MiB, 4 * MiB, "unmap")
        info = dict(l.split("=", 1) for l in driver("info", img).stdout.split())
        self.assertEqual(int(info["blocks_unmapped"]), 4)
        with open(raw, "wb") as f:
            f.write(b"\x11" * size)
            f.seek(3 * MiB)
            f.write(bytes(4 * MiB))
        qemu_check(self, img, "unmapped")
        qemu_compare(self, img, raw, "unmapped")
        # QEMU writes into an UNMAPPED block, then we write into another one.
        qemu_io_apply(img, [("write", 4 * MiB + 8192, 4096, 0x22)], raw)
        driver("write", img, 5 * MiB, 8192, 0x33)
        with open(raw, "r+b") as f:
            f.seek(5 * MiB)
            f.write(b"\x33" * 8192)
        qemu_check(self, img, "unmapped, after writes")
        qemu_compare(self, img, raw, "unmapped, after writes")
        our_compare(self, img, raw, "unmapped, after writes")
        our_check(self, img, "unmapped, after writes")

    def test_lss4096_refused_by_qemu_but_readable_by_us(self):
        """QEMU 7.2 refuses 4096-byte logical sectors; we read our own back."""
        img, raw = self.p("4k.vhdx"), self.p("4k.raw")
        size = SIZES[2 * MiB]
        driver("create", img, size, "--block-size", 2 * MiB, "--lss", 4096, "--pss", 4096)
        driver("random-writes", img, 77, 20, 3 * MiB, raw)
        our_compare(self, img, raw, "lss 4096")
        p = run(["qemu-img", "info", "-f", "vhdx", img], check=False)
        # Documented QEMU behaviour; if QEMU ever starts accepting it, compare.
        if p.returncode == 0:
            qemu_compare(self, img, raw, "lss 4096 (QEMU accepted it)")

    def test_our_dirty_log_is_replayed_by_qemu(self):
        """Flushed but not closed (LogGuid still set): QEMU refuses a read-only
        open, then replays our log entries (`qemu-img check -r all`, which
        validates their checksums and sequence) and reads the model back.
        Variants: a log that wrapped around its ring many times (a commit per
        write), and commits of more than 128 dirty BAT pages (a 64 GiB disk)."""
        # Fixed images only change metadata when WriteZeroes frees nothing,
        # so their log stays unused: dynamic only.
        variants = [
            # (size, block size, writes, max length, extra options)
            (SIZES[1 * MiB], 1 * MiB, 30, 3 * MiB, []),
            (SIZES[8 * MiB], 8 * MiB, 30, 4 * MiB, []),
            (SIZES[32 * MiB], 32 * MiB, 30, 4 * MiB, []),
            (100 * MiB, 1 * MiB, 300, 64 * 1024, ["--flush-every", 1]),  # wraps the 1 MiB log
            (64 << 30, 1 * MiB, 600, 8192, []),  # 129 BAT pages: large commits
        ]
        for size, bs, count, maxlen, extra in variants:
            # qemu-img compare walks 64 Ki blocks slowly (15 s): for the big
            # disk QEMU's replay result is checked by qemu-img check and by
            # our reader of the file QEMU rewrote.
            qemu_reads = size <= 1 << 30
            what = "dirty size=%d bs=%dM count=%d %s" % (size, bs // MiB, count, extra)
            with self.subTest(what):
                img, raw, img2 = self.p("d.vhdx"), self.p("d.raw"), self.p("d2.vhdx")
                driver("create", img, size, "--block-size", bs, "--pss", 512)
                driver("random-writes", img, bs // MiB + count, count, maxlen, raw, "--zeroes", "--trims",
                       "--no-close", *extra)
                info = dict(l.split("=", 1) for l in driver("info", img).stdout.split())
                self.assertNotEqual(info["header1_log_guid"], "00000000-0000-0000-0000-000000000000", what)
                our_compare(self, img, raw, what + " (dirty, replayed in memory)")
                shutil.copyfile(img, img2)
                p = run(["qemu-img", "info", "-f", "vhdx", img], check=False)
                self.assertNotEqual(p.returncode, 0, what + ": QEMU opened a dirty image read-only")
                self.assertIn("log", p.stderr, what)
                p = run(["qemu-img", "check", "-r", "all", "-f", "vhdx", img], check=False)
                self.assertEqual(p.returncode, 0, "%s: qemu replay: %s%s" % (what, p.stdout, p.stderr))
                qemu_check(self, img, what + " (after QEMU replay)")
                if qemu_reads:
                    qemu_compare(self, img, raw, what + " (after QEMU replay)")
                our_compare(self, img, raw, what + " (after QEMU replay)")
                our_check(self, img, what + " (after QEMU replay)")
                # Our own replay on a read-write open, then QEMU reads it.
                driver("open-rw", img2)
                qemu_check(self, img2, what + " (after our replay)")
                if qemu_reads:
                    qemu_compare(self, img2, raw, what + " (after our replay)")
                our_compare(self, img2, raw, what + " (after our replay)")
                for f in (img, img2, raw):
                    os.remove(f)

    # -- QEMU, then us, then QEMU -------------------------------------------

    def test_qemu_then_us_then_qemu(self):
        variants = [
            ("dynamic", [], 1 * MiB),
            ("dynamic", [], 32 * MiB),
            ("fixed", [], 8 * MiB),
            ("fixed", ["block_state_zero=off"], 8 * MiB),
            ("dynamic", [], 256 * MiB),
        ]
        for sub, extra, bs in variants:
            what = "qemu %s %s bs=%dM" % (sub, ",".join(extra) or "default", bs // MiB)
            with self.subTest(what):
                size = SIZES[bs]
                img, model = self.p("m.vhdx"), self.p("model.raw")
                opts = ["subformat=" + sub, "block_size=%d" % bs] + extra
                run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", ",".join(opts), img, str(size)])
                make_raw(model, size)
                rng = random.Random("mixed-%s-%s-%d" % (sub, extra, bs))
                qemu_io_apply(img, qemu_random_ops(rng, size, 10, min(3 * bs, 4 * MiB)), model)
                qemu_compare(self, img, model, what + " (after qemu)")

                driver("random-writes", img, rng.randrange(1 << 30), 30, min(3 * bs, 4 * MiB), model, "--zeroes", "--trims")
                qemu_check(self, img, what + " (after us)")
                qemu_compare(self, img, model, what + " (after us)")
                our_compare(self, img, model, what + " (after us)")

                qemu_io_apply(img, qemu_random_ops(rng, size, 10, min(3 * bs, 4 * MiB)), model)
                qemu_check(self, img, what + " (after qemu again)")
                qemu_compare(self, img, model, what + " (after qemu again)")
                our_compare(self, img, model, what + " (after qemu again)")
                our_check(self, img, what + " (after qemu again)")

                driver("random-writes", img, rng.randrange(1 << 30), 20, min(3 * bs, 4 * MiB), model, "--zeroes", "--trims")
                qemu_check(self, img, what + " (after us again)")
                qemu_compare(self, img, model, what + " (after us again)")
                os.remove(img)
                os.remove(model)


if __name__ == "__main__":
    start = time.time()
    result = unittest.main(exit=False, verbosity=2).result
    if os.environ.get("VHDX_INTEROP_TIMINGS"):
        for secs, cmd in sorted(TIMINGS, reverse=True)[:25]:
            print("%7.2f s  %s" % (secs, cmd))
    print("test_qemu_interop: %d run, %d failures, %d errors, %d skipped in %.1f s" %
          (result.testsRun, len(result.failures), len(result.errors), len(result.skipped), time.time() - start))
    sys.exit(0 if result.wasSuccessful() else 1)
