"""Helpers shared by the Python interop tests (test_qemu_interop.py,
test_libvhdi_interop.py): running commands and tests/tools/vhdx_testdriver,
scratch space, raw files. Imported from the tests' own directory, which
Python puts first on sys.path when it runs a script.

Environment: VHDX_BUILD_DIR (holds vhdx_testdriver), VHDX_INTEROP_TMPDIR.
"""

import os
import subprocess
import tempfile
import time

MiB = 1 << 20
BUILD_DIR = os.environ.get("VHDX_BUILD_DIR", "")
DRIVER = os.path.join(BUILD_DIR, "vhdx_testdriver")
TIMINGS = []  # (seconds, command) of every command run


def run(args, check=True, **kw):
    """Runs a command; returns CompletedProcess with text stdout/stderr."""
    args = [str(a) for a in args]
    t0 = time.time()
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    TIMINGS.append((time.time() - t0, " ".join(args)[:150]))
    if check and p.returncode != 0:
        raise AssertionError("command failed (%d): %s\nstdout: %s\nstderr: %s" %
                             (p.returncode, " ".join(args), p.stdout[-3000:], p.stderr[-3000:]))
    return p


def driver(*args, check=True):
    """Runs tests/tools/vhdx_testdriver (the library through its public API)."""
    return run([DRIVER] + list(args), check=check)


def scratch_dir(prefix):
    """A new directory for images: under $VHDX_INTEROP_TMPDIR, else /dev/shm
    when it has room (no fsync cost, sparse files and hole punching work),
    else $TMPDIR."""
    base = os.environ.get("VHDX_INTEROP_TMPDIR")
    if not base and os.path.isdir("/dev/shm"):
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize >= 4 << 30 and os.access("/dev/shm", os.W_OK):
            base = "/dev/shm"
    return tempfile.mkdtemp(prefix=prefix, dir=base)


def make_raw(path, size):
    """A sparse raw file of `size` zero bytes."""
    with open(path, "wb") as f:
        f.truncate(size)
