#!/usr/bin/python3
"""Integration test of the nbdkit plugin (build/nbdkit-vhdx-plugin.so) with
real NBD clients: nbdinfo, nbdcopy, qemu-img, python3-libnbd, nbdfuse.

What it proves:
  - the advertised capabilities and block-size constraints;
  - nbdinfo --map reports the allocation of known layouts (data, holes, ZERO
    blocks, a differencing chain);
  - nbdcopy and `qemu-img convert` over NBD give exactly the image content
    (qemu-img reading the .vhdx directly is the independent oracle; for the
    samples, their published sha256);
  - several python3-libnbd clients writing, zeroing, trimming and flushing
    concurrently over separate connections, with several requests in flight
    each and byte ranges sharing sectors (unaligned read-modify-write),
    produce exactly the content of a model;
  - trim and zero read back as zeros; fast zero succeeds when metadata-only
    and fails with ENOTSUP, changing nothing, otherwise;
  - errors reach the client with the right errno (EROFS, EINVAL, ENOSPC) and
    a message lands in nbdkit's log; bad parameters stop nbdkit at start-up;
  - after the server exits every written image checks clean with `vhdx check`
    and `qemu-img check` (or, where QEMU cannot read the image, with a clean
    log in `vhdx info`); read-only serving leaves files byte-identical,
    including the dirty-log sample, which is served replayed;
  - TLS (PSK) over TCP.

Environment: VHDX_BUILD_DIR (required), VHDX_SAMPLES_DIR (optional),
VHDX_NBDKIT_PRELOAD (LD_PRELOAD for nbdkit only: the sanitizer runtime when
the build is sanitized), VHDX_NBDKIT_VERBOSE (nbdkit -v). Run some tests
only with: test_nbdkit.py test_name ...   Deterministic (fixed seeds).
"""

import errno
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

import nbd

MiB = 1 << 20
BUILD = os.environ.get("VHDX_BUILD_DIR", "")
PLUGIN = os.path.join(BUILD, "nbdkit-vhdx-plugin.so")
VHDX = os.path.join(BUILD, "vhdx")
SAMPLES = os.environ.get("VHDX_SAMPLES_DIR") or os.path.join(
    os.environ.get("VHDX_SOURCE_DIR", os.path.dirname(__file__) + "/../.."), "../shared/samples")

HOLE = nbd.STATE_HOLE | nbd.STATE_ZERO  # 3: unallocated, reads as zeros
ZERO = nbd.STATE_ZERO                   # 2: allocated (ZERO block), reads as zeros
DATA = 0


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def run(*cmd, ok=True, stdin=None, **kw):
    """Runs a command; returns CompletedProcess (text). Fails if `ok` and rc != 0."""
    p = subprocess.run([str(c) for c in cmd], input=stdin, capture_output=True, text=stdin is None or
                       isinstance(stdin, str), timeout=300, **kw)
    if ok and p.returncode != 0:
        raise TestFailure(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(4 * MiB), b""):
            h.update(chunk)
    return h.hexdigest()


def first_difference(a, b):
    n = min(len(a), len(b))
    step = 1 << 16
    for base in range(0, n, step):
        if a[base:base + step] != b[base:base + step]:
            for i in range(base, min(n, base + step)):
                if a[i] != b[i]:
                    return i
    return n if len(a) != len(b) else None


def check_same(got, want, what):
    d = first_difference(got, want)
    if d is not None:
        g = got[d:d + 16].hex() if d < len(got) else "<end>"
        w = want[d:d + 16].hex() if d < len(want) else "<end>"
        raise TestFailure(f"{what}: first difference at byte {d} (got {g}, want {w}; lengths {len(got)}/{len(want)})")


# ---- images ------------------------------------------------------------------

def qemu_image(path, size, block_size=MiB, zero_blocks=False, writes=()):
    """A dynamic VHDX made by QEMU, with (offset, length, byte) pattern writes."""
    run("qemu-img", "create", "-q", "-f", "vhdx", "-o",
        f"subformat=dynamic,block_size={block_size},block_state_zero={'on' if zero_blocks else 'off'}", path, size)
    if writes:
        args = []
        for off, length, byte in writes:
            args += ["-c", f"write -P {byte:#x} {off} {length}"]
        run("qemu-io", "-f", "vhdx", *args, path)


def vhdx_create(path, size=None, *opts):
    run(VHDX, "create", *opts, path, *([size] if size is not None else []))


def vhdx_write(path, offset, data):
    run(VHDX, "write", path, offset, len(data), stdin=bytes(data))


def qemu_raw(path):
    """The image's content as QEMU reads it (independent of libvhdx)."""
    out = path + ".qemu.raw"
    run("qemu-img", "convert", "-f", "vhdx", "-O", "raw", path, out)
    with open(out, "rb") as f:
        data = f.read()
    os.unlink(out)
    return data


def check_clean(path, qemu=True):
    """The image needs no repair and no log replay, by our check and QEMU's."""
    p = run(VHDX, "check", path, ok=False)
    check(p.returncode == 0, f"vhdx check {path} exited {p.returncode}:\n{p.stdout}{p.stderr}")
    info = json.loads(run(VHDX, "info", "--json", path).stdout)
    check(info["log"]["state"] == "clean", f"{path}: log is {info['log']} after the server exited")
    if qemu:
        p = run("qemu-img", "check", "-f", "vhdx", path, ok=False)
        check(p.returncode == 0 and "No errors" in p.stdout, f"qemu-img check {path}:\n{p.stdout}{p.stderr}")


def decompress_sample(tmp, name):
    src = os.path.join(SAMPLES, name + ".bz2")
    if not os.path.exists(src):
        return None
    dst = os.path.join(tmp, name)
    with open(dst, "wb") as out:
        subprocess.run(["bzip2", "-dc", src], stdout=out, check=True)
    return dst


# ---- the server ----------------------------------------------------------------

class Server:
    """nbdkit in the foreground on a Unix socket (or TCP), killed on exit."""

    counter = 0

    def __init__(self, tmp, image, *params, readonly=False, nbdkit_args=(), tcp_port=None):
        Server.counter += 1
        self.sock = os.path.join(tmp, f"nbd{Server.counter}.sock")
        self.logpath = os.path.join(tmp, f"nbdkit{Server.counter}.log")
        self.cmd = ["nbdkit", "-f", "-v" if os.environ.get("VHDX_NBDKIT_VERBOSE") else "--log=stderr"]
        if tcp_port is None:
            self.cmd += ["-U", self.sock]
        else:
            self.cmd += ["-i", "127.0.0.1", "-p", str(tcp_port)]
        self.cmd += (["-r"] if readonly else []) + list(nbdkit_args) + [PLUGIN, f"file={image}", *params]
        self.tcp_port = tcp_port
        self.proc = None

    @property
    def uri(self):
        return f"nbd+unix:///?socket={self.sock}"

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def __enter__(self):
        self.logfile = open(self.logpath, "w")
        env = dict(os.environ)
        if os.environ.get("VHDX_NBDKIT_PRELOAD"):  # a sanitizer runtime for a sanitized plugin build
            env["LD_PRELOAD"] = os.environ["VHDX_NBDKIT_PRELOAD"]
        self.proc = subprocess.Popen(self.cmd, stdout=self.logfile, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                raise TestFailure(f"nbdkit exited {self.proc.returncode} at start-up:\n{self.log()}")
            if self._listening():
                return self
            if time.time() > deadline:
                raise TestFailure(f"nbdkit did not start listening:\n{self.log()}")
            time.sleep(0.02)

    def _listening(self):
        if self.tcp_port is None:
            return os.path.exists(self.sock)
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.tcp_port)) == 0

    def connect(self, strict=True):
        h = nbd.NBD()
        if not strict:
            h.set_strict_mode(0)  # let requests the server must reject reach it
        h.connect_unix(self.sock)
        return h

    def stop(self):
        """SIGTERM (a clean shutdown: .close, .cleanup); returns nbdkit's exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise TestFailure(f"nbdkit did not exit on SIGTERM:\n{self.log()}")
        return self.proc.returncode

    def __exit__(self, *exc):
        try:
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        finally:
            self.logfile.close()
        return False


def stop_cleanly(server):
    rc = server.stop()
    check(rc == 0, f"nbdkit exited {rc}:\n{server.log()}")
    check("error" not in server.log(), f"unexpected errors in nbdkit's log:\n{server.log()}")


def nbdinfo_json(uri):
    return json.loads(run("nbdinfo", "--json", uri).stdout)["exports"][0]


def nbd_map(uri):
    """nbdinfo --map as [(offset, length, type)]."""
    out = json.loads(run("nbdinfo", "--map", "--json", uri).stdout)
    return [(e["offset"], e["length"], e["type"]) for e in out]


def check_map(uri, want, what):
    got = nbd_map(uri)
    check(got == want, f"{what}: nbdinfo --map\n  got  {got}\n  want {want}")


def expect_nbd_error(fn, want_errno, what):
    try:
        fn()
    except nbd.Error as e:
        check(e.errnum == want_errno,
              f"{what}: got {e.errno} ({e.string}), want {errno.errorcode[want_errno]}")
        return
    raise TestFailure(f"{what}: succeeded, expected {errno.errorcode[want_errno]}")


def read_all(h, size):
    out = bytearray()
    for off in range(0, size, 32 * MiB):
        out += h.pread(min(32 * MiB, size - off), off)
    return bytes(out)


# ---- tests ---------------------------------------------------------------------

def test_exports_only_plugin_init(tmp):
    out = run("nm", "-D", "--defined-only", PLUGIN).stdout.split()
    names = [w for w in out if not all(c in "0123456789abcdef" for c in w) and len(w) > 1]
    check(names == ["plugin_init"], f"dynamic symbols of the plugin: {names}")
    dump = run("nbdkit", "--dump-plugin", PLUGIN).stdout
    for line in ("name=vhdx", "thread_model=parallel", "magic_config_key=file", "api_version=2"):
        check(line in dump.splitlines(), f"--dump-plugin lacks {line}:\n{dump}")


def test_capabilities(tmp):
    img = os.path.join(tmp, "caps.vhdx")
    qemu_image(img, 64 * MiB)
    with Server(tmp, img) as s:
        e = nbdinfo_json(s.uri)
        want = {"is_read_only": False, "can_flush": True, "can_fua": True, "can_trim": True, "can_zero": True,
                "can_fast_zero": True, "can_multi_conn": True, "can_cache": False, "is_rotational": False,
                "block_size_minimum": 512, "block_size_preferred": 4096, "block_size_maximum": 32 * MiB,
                "export-size": 64 * MiB}
        for k, v in want.items():
            check(e.get(k) == v, f"nbdinfo {k} = {e.get(k)}, want {v}")
        check(e.get("description", "").startswith("dynamic VHDX image"), f"description: {e.get('description')}")
        stop_cleanly(s)
    with Server(tmp, img, readonly=True) as s:
        e = nbdinfo_json(s.uri)
        check(e["is_read_only"] is True and e["can_multi_conn"] is True, f"read-only server: {e}")
        stop_cleanly(s)
    # 4096-byte logical sectors: the minimum block size follows.
    img4k = os.path.join(tmp, "caps4k.vhdx")
    vhdx_create(img4k, "16M", "--logical-sector-size", "4096", "-b", "1M")
    with Server(tmp, img4k, readonly=True) as s:
        e = nbdinfo_json(s.uri)
        check(e["block_size_minimum"] == 4096 and e["block_size_preferred"] == 4096, f"4K image: {e}")
        stop_cleanly(s)
    # A fixed image cannot zero without writing: no fast zero.
    fixed = os.path.join(tmp, "fixed.vhdx")
    vhdx_create(fixed, "8M", "-t", "fixed", "-b", "1M")
    with Server(tmp, fixed, readonly=True) as s:
        check(nbdinfo_json(s.uri)["can_fast_zero"] is False, "fixed image advertises fast zero")
        stop_cleanly(s)


def test_map_known_layouts(tmp):
    # QEMU-made image, unallocated blocks NOT_PRESENT: holes.
    img = os.path.join(tmp, "layout.vhdx")
    qemu_image(img, 64 * MiB, writes=[(0, MiB, 0x11), (3 * MiB + 512, 4096, 0x22), (10 * MiB, 2 * MiB, 0x33)])
    layout = [(0, MiB, DATA), (MiB, 2 * MiB, HOLE), (3 * MiB, MiB, DATA), (4 * MiB, 6 * MiB, HOLE),
              (10 * MiB, 2 * MiB, DATA), (12 * MiB, 52 * MiB, HOLE)]
    with Server(tmp, img, readonly=True) as s:
        check_map(s.uri, layout, "QEMU image with NOT_PRESENT blocks")
        stop_cleanly(s)
    # The same with QEMU's default block_state_zero=on: ZERO blocks are zero, not holes.
    imgz = os.path.join(tmp, "layout-zero.vhdx")
    qemu_image(imgz, 64 * MiB, zero_blocks=True, writes=[(0, MiB, 0x11)])
    with Server(tmp, imgz, readonly=True) as s:
        check_map(s.uri, [(0, MiB, DATA), (MiB, 63 * MiB, ZERO)], "QEMU image with ZERO blocks")
        stop_cleanly(s)
    # Changes over NBD show in the map: zero a data block (-> ZERO), trim half
    # of a two-block data run (-> ZERO in a base image), write into a hole.
    with Server(tmp, img) as s:
        h = s.connect()
        h.zero(MiB, 0)
        h.trim(MiB, 10 * MiB)
        h.pwrite(b"\x44" * 4096, 20 * MiB + 8192)
        h.flush()
        check_map(s.uri, [(0, MiB, ZERO), (MiB, 2 * MiB, HOLE), (3 * MiB, MiB, DATA), (4 * MiB, 6 * MiB, HOLE),
                          (10 * MiB, MiB, ZERO), (11 * MiB, MiB, DATA), (12 * MiB, 8 * MiB, HOLE),
                          (20 * MiB, MiB, DATA), (21 * MiB, 43 * MiB, HOLE)], "after zero, trim and write")
        h.shutdown()
        stop_cleanly(s)
    check_clean(img)
    want = bytearray(64 * MiB)
    want[3 * MiB + 512:3 * MiB + 512 + 4096] = b"\x22" * 4096
    want[11 * MiB:12 * MiB] = b"\x33" * MiB
    want[20 * MiB + 8192:20 * MiB + 8192 + 4096] = b"\x44" * 4096
    check_same(qemu_raw(img), want, "content after the NBD changes, read by QEMU")


def test_differencing_chain(tmp):
    base = os.path.join(tmp, "base.vhdx")
    child = os.path.join(tmp, "child.avhdx")
    rng = random.Random(7)
    size = 16 * MiB
    model = bytearray(size)
    vhdx_create(base, "16M", "-b", "1M")
    for off, n in [(0, MiB), (2 * MiB, MiB)]:
        data = rng.randbytes(n)
        vhdx_write(base, off, data)
        model[off:off + n] = data
    vhdx_create(child, None, "--parent", base)
    for off, n in [(2 * MiB + 4096, 8192), (5 * MiB, 4096)]:
        data = rng.randbytes(n)
        vhdx_write(child, off, data)
        model[off:off + n] = data
    base_sha = sha256_file(base)
    with Server(tmp, child) as s:
        # Data from both images is data; the rest of the chain is holes.
        check_map(s.uri, [(0, MiB, DATA), (MiB, MiB, HOLE), (2 * MiB, MiB, DATA), (3 * MiB, 2 * MiB, HOLE),
                          (5 * MiB, 4096, DATA), (5 * MiB + 4096, 11 * MiB - 4096, HOLE)], "differencing chain")
        h = s.connect(strict=False)
        check_same(read_all(h, size), model, "chain content")
        # Writes land in the child; zeroing a parent-backed range hides it.
        data = rng.randbytes(3000)
        h.pwrite(data, MiB + 100)
        model[MiB + 100:MiB + 3100] = data
        h.zero(MiB, 0)
        model[0:MiB] = bytes(MiB)
        h.zero(4096, 2 * MiB)
        model[2 * MiB:2 * MiB + 4096] = bytes(4096)
        h.flush()
        check_same(read_all(h, size), model, "chain content after writes")
        h.shutdown()
        stop_cleanly(s)
    check(sha256_file(base) == base_sha, "the parent changed while its child was served")
    check_clean(child, qemu=False)
    check_clean(base)
    out = os.path.join(tmp, "chain.raw")
    with Server(tmp, child, readonly=True) as s:
        run("nbdcopy", s.uri, out)
        stop_cleanly(s)
    with open(out, "rb") as f:
        check_same(f.read(), model, "nbdcopy of the chain")
    # parent= overrides the stored locator (the parent moved).
    moved = os.path.join(tmp, "moved-base.vhdx")
    os.rename(base, moved)
    p = run("nbdkit", "-U", os.path.join(tmp, "x.sock"), PLUGIN, f"file={child}", "--run", "true", ok=False)
    check(p.returncode != 0 and "error" in p.stderr, f"a missing parent did not stop nbdkit: {p.stderr}")
    with Server(tmp, child, f"parent={moved}", readonly=True) as s:
        h = s.connect()
        check_same(read_all(h, size), model, "chain with parent=")
        h.shutdown()
        stop_cleanly(s)


def test_nbdcopy_and_qemu_convert(tmp):
    img = os.path.join(tmp, "copy.vhdx")
    qemu_image(img, 48 * MiB, writes=[(0, 3 * MiB, 0x5a), (7 * MiB + 512, 1536, 0xc3), (40 * MiB, 8 * MiB, 0x0f)])
    want = qemu_raw(img)
    sha = sha256_file(img)
    with Server(tmp, img, readonly=True) as s:
        out1 = os.path.join(tmp, "nbdcopy.raw")
        run("nbdcopy", s.uri, out1)
        out2 = os.path.join(tmp, "qemu-convert.raw")
        run("qemu-img", "convert", "-f", "raw", s.uri, "-O", "raw", out2)
        # Several connections at once (nbdcopy uses multi-conn when offered).
        out3 = os.path.join(tmp, "nbdcopy4.raw")
        run("nbdcopy", "--connections=4", "--requests=8", s.uri, out3)
        stop_cleanly(s)
    for path in (out1, out2, out3):
        with open(path, "rb") as f:
            check_same(f.read(), want, os.path.basename(path))
    check(sha256_file(img) == sha, "a read-only server changed the image")
    # The other direction: qemu-img convert and nbdcopy *into* the plugin.
    target = os.path.join(tmp, "target.vhdx")
    qemu_image(target, 48 * MiB)
    with Server(tmp, target) as s:
        run("qemu-img", "convert", "-n", "-f", "vhdx", img, "-O", "raw", s.uri)
        stop_cleanly(s)
    check_clean(target)
    check_same(qemu_raw(target), want, "qemu-img convert into the plugin")
    target2 = os.path.join(tmp, "target2.vhdx")
    qemu_image(target2, 48 * MiB, writes=[(0, 48 * MiB, 0xee)])  # must be overwritten, holes included
    with Server(tmp, target2) as s:
        run("nbdcopy", out1, s.uri)
        stop_cleanly(s)
    check_clean(target2)
    check_same(qemu_raw(target2), want, "nbdcopy into the plugin")


# Concurrent clients. Each client owns bytes by a fixed pattern; the unit
# sizes are not sector multiples, so clients share sectors and unaligned
# writes race with each other (the plugin's read-modify-write must not lose
# a neighbour's bytes).
CONC_SIZE = 32 * MiB
CONC_CLIENTS = 4
FINE_AREA = (0, 4 * MiB)           # units of 1000 bytes, owner = unit % clients
COARSE_AREA = (4 * MiB, 32 * MiB)  # units of 192 KiB, owner = unit % clients


def client_rounds(i, rounds=40, per_round=8):
    """Client i's requests: rounds of disjoint requests sent together."""
    rng = random.Random(1000 + i)
    out = []
    for _ in range(rounds):
        batch, used = [], set()
        for _ in range(per_round):
            if rng.random() < 0.5:
                unit_size, (lo, hi) = 1000, FINE_AREA
            else:
                unit_size, (lo, hi) = 192 * 1024, COARSE_AREA
            units = (hi - lo) // unit_size
            u = rng.randrange(i, units, CONC_CLIENTS)
            if (unit_size, u) in used:
                continue
            used.add((unit_size, u))
            start = lo + u * unit_size
            a = rng.randrange(0, unit_size)
            b = rng.randrange(a + 1, unit_size + 1)
            if unit_size > 1000 and rng.random() < 0.5:  # sector-aligned sometimes
                a, b = a // 512 * 512, max(a // 512 * 512 + 512, b // 512 * 512)
            kind = rng.choices(["write", "zero", "trim"], [8, 2, 1])[0]
            if kind == "trim" and (a % 512 or b % 512):
                kind = "zero"
            fua = rng.random() < 0.2
            if kind == "write":
                batch.append(("write", start + a, rng.randbytes(b - a), fua))
            else:
                batch.append((kind, start + a, b - a, fua))
        out.append((batch, rng.random() < 0.3))  # (requests, flush after)
    return out


def apply_rounds(model, rounds):
    for batch, _ in rounds:
        for kind, off, x, _ in batch:
            if kind == "write":
                model[off:off + len(x)] = x
            else:  # zero, and trim: a base image reads zeros where trimmed
                model[off:off + x] = bytes(x)


def client_main(i, sock):
    """Runs in a separate process: one connection, many requests in flight."""
    h = nbd.NBD()
    h.set_strict_mode(0)  # unaligned requests on purpose
    h.connect_unix(sock)
    for batch, flush in client_rounds(i):
        cookies = []
        for kind, off, x, fua in batch:
            flags = nbd.CMD_FLAG_FUA if fua else 0
            if kind == "write":
                cookies.append(h.aio_pwrite(nbd.Buffer.from_bytearray(x), off, flags=flags))
            elif kind == "zero":
                cookies.append(h.aio_zero(x, off, flags=flags))
            else:
                cookies.append(h.aio_trim(x, off, flags=flags))
        while h.aio_in_flight() > 0:
            h.poll(-1)
        for c in cookies:
            h.aio_command_completed(c)  # raises on error
        if flush:
            h.flush()
    h.flush()
    h.shutdown()


def test_concurrent_clients(tmp):
    img = os.path.join(tmp, "conc.vhdx")
    # Existing data under the clients' requests, so that partial sectors and
    # partial blocks are read-modify-written, not just filled from zero.
    qemu_image(img, CONC_SIZE, writes=[(0, 2 * MiB, 0x5a), (6 * MiB, 3 * MiB, 0xa5)])
    model = bytearray(qemu_raw(img))
    for i in range(CONC_CLIENTS):
        apply_rounds(model, client_rounds(i))
    with Server(tmp, img) as s:
        procs = [subprocess.Popen([sys.executable, __file__, "--client", str(i), s.sock],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(CONC_CLIENTS)]
        outputs = [p.communicate(timeout=120)[0].decode(errors="replace") for p in procs]
        for i, p in enumerate(procs):
            check(p.returncode == 0, f"client {i} failed:\n{outputs[i]}\nnbdkit log:\n{s.log()}")
        h = s.connect()
        check_same(read_all(h, CONC_SIZE), model, "content after concurrent clients (over NBD)")
        h.shutdown()
        stop_cleanly(s)
    check_clean(img)
    check_same(qemu_raw(img), model, "content after concurrent clients (read by QEMU)")


def test_trim_zero_fast_zero(tmp):
    img = os.path.join(tmp, "tz.vhdx")
    qemu_image(img, 16 * MiB, writes=[(0, 8 * MiB, 0x77)])
    model = bytearray(b"\x77" * 8 * MiB + bytes(8 * MiB))
    with Server(tmp, img) as s:
        h = s.connect(strict=False)
        h.zero(1000, 512 + 7)                        # unaligned, inside one block
        model[519:1519] = bytes(1000)
        h.zero(2 * MiB, MiB)                         # two whole blocks
        model[MiB:3 * MiB] = bytes(2 * MiB)
        h.trim(MiB, 4 * MiB, nbd.CMD_FLAG_FUA)       # a whole block
        model[4 * MiB:5 * MiB] = bytes(MiB)
        h.trim(8192, 5 * MiB + 4096)                 # part of a block
        model[5 * MiB + 4096:5 * MiB + 12288] = bytes(8192)
        h.zero(MiB, 6 * MiB, nbd.CMD_FLAG_FAST_ZERO)  # whole block: metadata only
        model[6 * MiB:7 * MiB] = bytes(MiB)
        h.zero(8 * MiB, 8 * MiB, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_FUA)  # holes + whole blocks
        # Part of a data block would need data written: ENOTSUP, nothing changed.
        expect_nbd_error(lambda: h.zero(4096, 7 * MiB + 4096, nbd.CMD_FLAG_FAST_ZERO), errno.ENOTSUP,
                         "fast zero of part of a data block")
        h.zero(4096, 7 * MiB + 4096, nbd.CMD_FLAG_FUA)  # the same without FAST_ZERO works
        model[7 * MiB + 4096:7 * MiB + 8192] = bytes(4096)
        # Unaligned fast zero over whole blocks with edges already zero: fine.
        h.zero(7 * MiB - 1536, 8 * MiB + 1024, nbd.CMD_FLAG_FAST_ZERO)
        check_same(read_all(h, 16 * MiB), model, "content after trims and zeroes")
        # Whole blocks zeroed or trimmed are ZERO blocks (holes turn into ZERO
        # too); partial ones keep their data block.
        check_map(s.uri, [(0, MiB, DATA), (MiB, 2 * MiB, ZERO), (3 * MiB, MiB, DATA), (4 * MiB, MiB, ZERO),
                          (5 * MiB, MiB, DATA), (6 * MiB, MiB, ZERO), (7 * MiB, MiB, DATA),
                          (8 * MiB, 8 * MiB, ZERO)], "map after trims and zeroes")
        h.shutdown()
        stop_cleanly(s)
    check_clean(img)
    check_same(qemu_raw(img), model, "trim/zero content read by QEMU")


def test_unaligned_and_4k_sectors(tmp):
    """Requests that ignore the advertised minimum block size still work."""
    img = os.path.join(tmp, "4k.vhdx")
    vhdx_create(img, "8M", "--logical-sector-size", "4096", "-b", "1M")
    rng = random.Random(42)
    model = bytearray(8 * MiB)
    with Server(tmp, img) as s:
        h = s.connect(strict=False)
        for _ in range(200):
            off = rng.randrange(0, 8 * MiB - 1)
            n = rng.randrange(1, min(20000, 8 * MiB - off) + 1)
            if rng.random() < 0.8:
                data = rng.randbytes(n)
                h.pwrite(data, off, nbd.CMD_FLAG_FUA if rng.random() < 0.1 else 0)
                model[off:off + n] = data
            else:
                h.zero(n, off)
                model[off:off + n] = bytes(n)
            if rng.random() < 0.3:
                a = rng.randrange(0, 8 * MiB - 1)
                b = rng.randrange(a + 1, min(8 * MiB, a + 30000) + 1)
                check(h.pread(b - a, a) == model[a:b], f"unaligned read [{a}, {b})")
        check_same(read_all(h, 8 * MiB), model, "4K-sector image after unaligned requests")
        h.shutdown()
        stop_cleanly(s)
    check_clean(img, qemu=False)  # QEMU does not read 4K-sector VHDX
    with Server(tmp, img, readonly=True) as s:
        h = s.connect()
        check_same(read_all(h, 8 * MiB), model, "4K-sector image after reopening")
        h.shutdown()
        stop_cleanly(s)


def test_errors(tmp):
    img = os.path.join(tmp, "err.vhdx")
    qemu_image(img, 4 * MiB, writes=[(0, MiB, 0x12)])
    sha = sha256_file(img)
    with Server(tmp, img, readonly=True) as s:
        h = s.connect(strict=False)
        # nbdkit refuses writes to a read-only export itself, before the
        # plugin, with the NBD protocol's EPERM.
        expect_nbd_error(lambda: h.pwrite(b"x" * 512, 0), errno.EPERM, "write to a read-only server")
        expect_nbd_error(lambda: h.zero(512, 0), errno.EPERM, "zero on a read-only server")
        expect_nbd_error(lambda: h.trim(512, 0), errno.EPERM, "trim on a read-only server")
        expect_nbd_error(lambda: h.pread(1024, 4 * MiB - 512), errno.EINVAL, "read past the end")
        check(h.pread(512, 0) == b"\x12" * 512, "the connection survives rejected requests")
        h.shutdown()
        s.stop()
        log = s.log()
        check("EROFS" in log or "read-only" in log or "readonly" in log, f"no message for EROFS in the log:\n{log}")
        check("out of range" in log or "beyond" in log, f"no message for the bad read in the log:\n{log}")
    check(sha256_file(img) == sha, "a read-only server changed the image")
    with Server(tmp, img) as s:
        h = s.connect(strict=False)
        expect_nbd_error(lambda: h.pwrite(b"x" * 1024, 4 * MiB - 512), errno.ENOSPC, "write past the end")
        expect_nbd_error(lambda: h.zero(1024, 4 * MiB), errno.ENOSPC, "zero past the end")
        h.pwrite(b"y" * 512, 4 * MiB - 512)
        h.shutdown()
        s.stop()
    check_clean(img)
    # Bad parameters and bad files stop nbdkit at start-up with a message.
    junk = os.path.join(tmp, "junk.vhdx")
    with open(junk, "wb") as f:
        f.write(random.Random(3).randbytes(3 * MiB))
    cases = [
        ([PLUGIN], "file= parameter is required"),
        ([PLUGIN, f"file={tmp}/missing.vhdx"], "missing.vhdx"),
        ([PLUGIN, f"file={junk}"], "junk.vhdx"),
        ([PLUGIN, f"file={img}", "bogus=1"], "unknown parameter 'bogus'"),
        ([PLUGIN, f"file={img}", f"file={img}"], "file= given more than once"),
    ]
    for args, message in cases:
        p = run("nbdkit", "-U", os.path.join(tmp, "bad.sock"), *args, "--run", "true", ok=False)
        check(p.returncode != 0 and message in p.stderr, f"nbdkit {args}: rc {p.returncode}, stderr:\n{p.stderr}")
    # The short form without file= (magic config key).
    p = run("nbdkit", "-r", "-U", "-", PLUGIN, img, "--run", 'nbdinfo --size "$uri"')
    check(p.stdout.strip() == str(4 * MiB), f"nbdkit PLUGIN IMAGE: {p.stdout}")


def test_samples(tmp):
    if not os.path.isdir(SAMPLES):
        print("  (no samples directory; skipped)")
        return
    known = {
        "iotest-dynamic-1G.vhdx": "d3d112d8dab7fd360609f7d5a7b769904b7a2a7d7b6b8c535f65a23293c05478",
        "test-disk2vhd.vhdx": "96d964042be9b58dda1725567abfb0cf9fd8380e2118754afa979c2ad445938a",
        "coreos-hyperv-config2_base.vhdx": "afce9cca367ebfa91a673d612bcb6fc32b12a80211207f7a7b1cd3aed3cac19d",
    }
    for name, raw_sha in known.items():
        img = decompress_sample(tmp, name)
        check(img is not None, f"sample {name} missing")
        sha = sha256_file(img)
        out = os.path.join(tmp, name + ".raw")
        with Server(tmp, img, readonly=True) as s:
            run("nbdcopy", s.uri, out)
            stop_cleanly(s)
        check(sha256_file(out) == raw_sha, f"{name}: nbdcopy content sha256 differs")
        check(sha256_file(img) == sha, f"{name}: the file changed under a read-only server")
        os.unlink(out)
    # The dirty-log sample: served read-only, replayed in memory, file unchanged.
    dirty = decompress_sample(tmp, "iotest-dirtylog-10G-4M.vhdx")
    sha = sha256_file(dirty)
    with Server(tmp, dirty, readonly=True) as s:
        check_map(s.uri, [(0, 18 * MiB, DATA), (18 * MiB, 10 * 1024 * MiB - 18 * MiB, HOLE)], "dirty-log sample")
        h = s.connect()
        check(h.pread(18 * MiB, 0) == b"\xa5" * (18 * MiB), "dirty-log sample: [0, 18M) is not 0xa5 (log ignored?)")
        check(h.pread(MiB, 18 * MiB) == bytes(MiB), "dirty-log sample: [18M, 19M) is not zero")
        h.shutdown()
        stop_cleanly(s)
    check(sha256_file(dirty) == sha, "the dirty-log sample changed under a read-only server")
    # Served read-write the log is replayed on disk; after the server the file is clean.
    with Server(tmp, dirty) as s:
        h = s.connect()
        check(h.pread(MiB, 17 * MiB) == b"\xa5" * MiB, "dirty-log sample (read-write): block 17")
        h.pwrite(b"\x3c" * 4096, 5 * 1024 * MiB)
        h.shutdown()
        stop_cleanly(s)
    check_clean(dirty)
    p = run("qemu-io", "-r", "-f", "vhdx", "-c", "read -P 0xa5 0 18M", "-c", "read -P 0x3c 5G 4k", dirty)
    check("Pattern verification failed" not in p.stdout, f"QEMU reads wrong data after serving:\n{p.stdout}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tls_psk_over_tcp(tmp):
    if "tls=yes" not in run("nbdkit", "--dump-config").stdout:
        print("  (nbdkit without TLS; skipped)")
        return
    img = os.path.join(tmp, "tls.vhdx")
    qemu_image(img, 8 * MiB, writes=[(0, MiB, 0x61)])
    psk = os.path.join(tmp, "keys.psk")
    with open(psk, "w") as f:
        f.write("alice:" + random.Random(5).randbytes(32).hex() + "\n")
    os.chmod(psk, 0o600)
    port = free_port()
    with Server(tmp, img, readonly=True, tcp_port=port, nbdkit_args=["--tls=require", f"--tls-psk={psk}"]) as s:
        uri = f"nbds://alice@127.0.0.1:{port}/?tls-psk-file={psk}"
        e = json.loads(run("nbdinfo", "--json", uri).stdout)
        check(e["TLS"] is True and e["exports"][0]["export-size"] == 8 * MiB, f"nbdinfo over TLS: {e}")
        p = run("nbdinfo", f"nbd://127.0.0.1:{port}/", ok=False)
        check(p.returncode != 0, "a plaintext client was served by --tls=require")
        out = os.path.join(tmp, "tls.raw")
        run("nbdcopy", uri, out)
        s.stop()
    with open(out, "rb") as f:
        check(f.read() == b"\x61" * MiB + bytes(7 * MiB), "content over TLS")


def test_nbdfuse(tmp):
    if not os.path.exists("/dev/fuse") or not shutil.which("nbdfuse"):
        print("  (no FUSE; skipped)")
        return
    img = os.path.join(tmp, "fuse.vhdx")
    qemu_image(img, 8 * MiB, writes=[(MiB, MiB, 0x66)])
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    # nbdfuse passes byte-granular file writes on, and libnbd refuses those
    # below the advertised minimum block size; the policy filter lowers it to
    # 1 so that the plugin's read-modify-write serves them (README).
    with Server(tmp, img, "blocksize-minimum=1", nbdkit_args=["--filter=blocksize-policy"]) as s:
        fuse = subprocess.Popen(["nbdfuse", os.path.join(mnt, "disk.raw"), "--unix", s.sock],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            raw = os.path.join(mnt, "disk.raw")
            deadline = time.time() + 10
            while not os.path.exists(raw):
                if fuse.poll() is not None or time.time() > deadline:
                    print("  (nbdfuse could not mount here; skipped):", fuse.stdout.read().decode(errors="replace"))
                    return
                time.sleep(0.05)
            with open(raw, "r+b") as f:
                check(os.path.getsize(raw) == 8 * MiB, "nbdfuse file size")
                f.seek(MiB)
                check(f.read(MiB) == b"\x66" * MiB, "read through nbdfuse")
                f.seek(100)
                f.write(b"through fuse")
                f.flush()
                os.fsync(f.fileno())
        finally:
            subprocess.run(["fusermount3", "-u", mnt] if shutil.which("fusermount3") else ["umount", mnt],
                           capture_output=True)
            try:
                fuse.wait(10)
            except subprocess.TimeoutExpired:
                fuse.kill()
                fuse.wait()
        stop_cleanly(s)
    check_clean(img)
    check(qemu_raw(img)[100:112] == b"through fuse", "write through nbdfuse not in the image")


TESTS = [v for k, v in list(globals().items()) if k.startswith("test_")]


def main(argv):
    if len(argv) == 4 and argv[1] == "--client":
        client_main(int(argv[2]), argv[3])
        return 0
    if not os.path.exists(PLUGIN):
        print(f"FAIL: {PLUGIN} is missing (set VHDX_BUILD_DIR)", file=sys.stderr)
        return 1
    selected = [t for t in TESTS if len(argv) == 1 or t.__name__ in argv[1:]]
    failures = 0
    for t in selected:
        tmp = tempfile.mkdtemp(prefix="vhdx-nbdkit-test.")
        start = time.time()
        try:
            t(tmp)
            print(f"PASS {t.__name__} ({time.time() - start:.1f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every test
            failures += 1
            detail = str(e) if isinstance(e, TestFailure) else traceback.format_exc()
            print(f"FAIL {t.__name__}: {detail}", flush=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(selected) - failures}/{len(selected)} passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
