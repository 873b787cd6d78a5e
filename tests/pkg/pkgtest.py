"""Helpers shared by the tests of the `pshm` Python package (tests/pkg/).

The module under test: `pshm` by default; with PSHM_TEST_MODULE=cpython,
CPython's own multiprocessing.shared_memory / multiprocessing.managers, so
that every expectation these tests hold about "what CPython does" can be
checked against the real thing. Tests of pshm's additions and of its
documented differences from CPython are marked @pshm_only.

ctest sets PSHM (the CLI), PSHM_HELPER_<name> (the C helpers) and a
PYTHONPATH that finds the built package. Every script ends with one line
"N passed, M failed[, K skipped]" and exits 1 if anything failed.
"""
import fcntl
import gc
import itertools
import os
import subprocess
import sys
import time
import unittest

from pkgresult import run_suite, summary

# The helpers the other Python tests use (tests/python/pshmtest.py).
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from pshmtest import SHM_DIR, remove_block, shm_exists  # noqa: E402

PSHM = os.environ.get("PSHM", "pshm")
CPYTHON = os.environ.get("PSHM_TEST_MODULE", "pshm") == "cpython"
MODULE_NAME = "cpython" if CPYTHON else "pshm"

if CPYTHON:
    import multiprocessing.managers as managers
    import multiprocessing.shared_memory as shared_memory
else:
    try:
        import pshm.managers as managers
        import pshm.shared_memory as shared_memory
    except ImportError as e:  # still end with the summary line
        print("cannot import pshm with %s (PYTHONPATH=%r): %r" % (
            sys.executable, os.environ.get("PYTHONPATH"), e))
        print(summary(0, 1, 0))
        sys.exit(1)

SharedMemory = shared_memory.SharedMemory
ShareableList = shared_memory.ShareableList
SharedMemoryManager = managers.SharedMemoryManager

# CPython grew track= in 3.13; pshm has 3.13's signature on every version.
HAS_TRACK = not CPYTHON or sys.version_info >= (3, 13)
# CPython 3.8 lays a ShareableList out differently (item sizes where 3.9+
# store offsets); libpshm reads and writes the 3.9+ layout only.
CPYTHON_LIST_LAYOUT_OK = sys.version_info >= (3, 9)
# The module under test writes lists libpshm reads (pshm's always does).
MODULE_LIST_LAYOUT_OK = not CPYTHON or CPYTHON_LIST_LAYOUT_OK

pshm_only = unittest.skipIf(CPYTHON, "pshm addition or documented difference")
needs_track = unittest.skipUnless(HAS_TRACK, "CPython < 3.13 has no track=")

_counter = itertools.count()


def unique_name(tag):
    """A block name no other test or run uses."""
    return "pkgt_%s_%d_%d" % (tag, os.getpid(), next(_counter))


def wait_for(predicate, seconds=10.0):
    """Poll `predicate` until it is true or `seconds` pass; its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def wait_gone(name, seconds=10.0):
    return wait_for(lambda: not shm_exists(name), seconds)


def flock_held(name):
    """Whether some handle holds block NAME (the shared flock every pshm
    handle keeps): an exclusive flock is refused right now."""
    fd = os.open(os.path.join(SHM_DIR, name.lstrip("/")), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def mappings_of(name):
    """How many mappings of block NAME this process has. Matched by device
    and inode: a mapping's path in /proc/self/maps is the name the file had
    when it was mapped (pshm creates under a temporary name, then links)."""
    st = os.stat(os.path.join(SHM_DIR, name.lstrip("/")))
    dev = "%02x:%02x" % (os.major(st.st_dev), os.minor(st.st_dev))
    count = 0
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(None, 5)
            if len(fields) == 6 and fields[3] == dev and fields[4] == str(st.st_ino):
                count += 1
    return count


def child_env(**extra):
    """The environment for a child Python: ours (PYTHONPATH finds the
    package under test, PSHM_TEST_MODULE picks it) plus `extra`."""
    env = dict(os.environ)
    env.update({k: str(v) for k, v in extra.items()})
    return env


# The first lines of every child script: the same module under test.
CHILD_PRELUDE = """\
import os, sys
if os.environ.get("PSHM_TEST_MODULE", "pshm") == "cpython":
    from multiprocessing.shared_memory import SharedMemory, ShareableList
    from multiprocessing.managers import SharedMemoryManager
else:
    from pshm import SharedMemory, ShareableList, SharedMemoryManager
"""


def python(code, *args, timeout=30, env=None, input=None):
    """Run `code` (after CHILD_PRELUDE) in a fresh interpreter, this one's
    executable; returns the CompletedProcess with text stdout/stderr."""
    return subprocess.run([sys.executable, "-c", CHILD_PRELUDE + code, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env=env or child_env(), input=input)


def python_popen(code, *args, env=None, stderr=subprocess.PIPE):
    """Start `code` in a fresh interpreter with pipes; see read_line."""
    return subprocess.Popen([sys.executable, "-c", CHILD_PRELUDE + code, *map(str, args)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                            env=env or child_env(), text=True)


def read_line(proc, timeout=15.0):
    """The next stdout line of a Popen (text mode), without the newline;
    fails the test if none arrives within `timeout` seconds."""
    import selectors
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError("no output from %r within %ss" % (proc.args[:3], timeout))
    return proc.stdout.readline().rstrip("\n")


def cli(*args, input=b"", timeout=30):
    """Run the pshm CLI; the CompletedProcess (bytes)."""
    return subprocess.run([PSHM, *map(str, args)], input=input, capture_output=True,
                          timeout=timeout)


def helper(name):
    """Path of a C helper program (PSHM_HELPER_<name>), or skip the test."""
    path = os.environ.get("PSHM_HELPER_" + name)
    if not path:
        raise unittest.SkipTest("PSHM_HELPER_%s not set (run through ctest)" % name)
    return path


def need_cli():
    if "PSHM" not in os.environ:
        raise unittest.SkipTest("PSHM (the CLI) not set (run through ctest)")


class PkgCase(unittest.TestCase):
    """Remembers block names and child processes; after each test, pass or
    fail, kills the children and removes the blocks still there."""

    def setUp(self):
        self._names = []
        self._procs = []
        self.addCleanup(self._finish)  # cleanups run last-in first-out: this one last

    def _finish(self):
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        gc.collect()
        for name in self._names:
            remove_block(name)

    def track(self, name):
        """Remove block NAME after the test if still there; returns NAME."""
        self._names.append(name)
        return name

    def keep(self, proc):
        """Kill this child after the test if it still runs; returns it."""
        self._procs.append(proc)
        return proc

    def _drop(self, shm):
        """Close and unlink through the handle (so CPython's own tracker,
        when it is the module under test, forgets the block too)."""
        try:
            shm.unlink()
        except FileNotFoundError:
            pass
        shm.close()

    def block(self, size=64, name=None, **kw):
        """A new SharedMemory closed and unlinked after the test."""
        shm = SharedMemory(name, create=True, size=size, **kw)
        self.track(shm.name)
        self.addCleanup(self._drop, shm)
        return shm

    def slist(self, values, name=None, **kw):
        """A new ShareableList closed and unlinked after the test."""
        sl = ShareableList(values, name=name, **kw)
        self.track(sl.shm.name)
        self.addCleanup(self._drop, sl.shm)
        return sl

    def cli_ok(self, *args, input=b""):
        need_cli()
        res = cli(*args, input=input)
        self.assertEqual(res.returncode, 0, "pshm %r failed: %r" % (args, res.stderr))
        return res.stdout.decode()

    def python_ok(self, code, *args, **kw):
        res = python(code, *args, **kw)
        self.assertEqual(res.returncode, 0, "child failed:\n%s" % res.stderr)
        return res


def main():
    """Run the calling module's tests and print the summary line."""
    print("module under test: %s (Python %s, %s)" % (
        MODULE_NAME, sys.version.split()[0], sys.executable), flush=True)
    module = sys.modules["__main__"]
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    if len(sys.argv) > 1:
        suite = unittest.defaultTestLoader.loadTestsFromNames(sys.argv[1:], module)
    sys.exit(run_suite(suite))
