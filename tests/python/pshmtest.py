"""Helpers shared by the Python tests: run the pshm CLI, make unique block
names, watch /dev/shm, and clean up every block a test made.

ctest sets PSHM (the CLI binary), PSHM_SOURCE and PSHM_BUILD.
"""
import itertools
import os
import selectors
import subprocess
import time
import unittest
from multiprocessing import resource_tracker, shared_memory

SHM_DIR = "/dev/shm"
PSHM = os.environ.get("PSHM", "pshm")

_counter = itertools.count()


def unique_name(tag):
    """A block name no other test or run uses: pshmcli_<tag>_<pid>_<n>."""
    return "pshmcli_%s_%d_%d" % (tag, os.getpid(), next(_counter))


def shm_exists(name):
    return os.path.exists(os.path.join(SHM_DIR, name.lstrip("/")))


def wait_gone(name, seconds=5.0):
    """Wait up to `seconds` for the block to disappear; True if it did."""
    deadline = time.monotonic() + seconds
    while shm_exists(name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def remove_block(name):
    """Unlink a block if it is still there (cleanup; never fails)."""
    try:
        os.unlink(os.path.join(SHM_DIR, name.lstrip("/")))
    except FileNotFoundError:
        pass


def run(*args, input=b"", env=None, timeout=30):
    """Run the CLI; return the CompletedProcess (stdout, stderr as bytes)."""
    return subprocess.run([PSHM, *args], input=input, capture_output=True,
                          env=env, timeout=timeout)


def spawn(*args, env=None, stderr=subprocess.DEVNULL):
    """Start the CLI with pipes for stdin and stdout. Its stderr is not a
    pipe by default: a tracker the CLI starts keeps stderr open after the
    CLI is gone, so reading it to EOF would wait for the tracker."""
    return subprocess.Popen([PSHM, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=stderr, env=env)


def read_line(proc, timeout=10.0):
    """The next line of a spawned process's stdout, without the newline."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError("no output from %r within %ss" % (proc.args, timeout))
    return proc.stdout.readline().decode().rstrip("\n")


def attach_python(name):
    """Attach with CPython's SharedMemory and unregister it from Python's
    resource tracker, so Python neither removes the block nor warns."""
    shm = shared_memory.SharedMemory(name=name)
    resource_tracker.unregister(shm._name, "shared_memory")
    return shm


class CliTestCase(unittest.TestCase):
    """A TestCase whose blocks are removed after each test, pass or fail."""

    def setUp(self):
        self._blocks = []
        self._procs = []

    def tearDown(self):
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None and not pipe.closed:
                    pipe.close()
        for name in self._blocks:
            remove_block(name)

    def track(self, name):
        """Remember a block for cleanup; returns the name."""
        self._blocks.append(name)
        return name

    def keep(self, proc):
        """Remember a spawned process, killed at teardown if still running."""
        self._procs.append(proc)
        return proc

    def pshm_ok(self, *args, input=b"", env=None):
        """Run the CLI, assert exit 0; return stdout."""
        res = run(*args, input=input, env=env)
        self.assertEqual(res.returncode, 0, "pshm %r failed: %s" % (
            args, res.stderr.decode(errors="replace")))
        return res.stdout

    def pshm_fails(self, *args, status=1, input=b"", env=None):
        """Run the CLI, assert the exit status; return stderr as text."""
        res = run(*args, input=input, env=env)
        self.assertEqual(res.returncode, status, "pshm %r: stdout %r stderr %r" % (
            args, res.stdout, res.stderr))
        return res.stderr.decode(errors="replace")

    def create(self, size, name=None, *extra):
        """`pshm create` a block, tracked for cleanup; returns its name."""
        args = ["create", "--size", str(size), *extra]
        if name is not None:
            args += ["--name", name]
        created = self.pshm_ok(*args).decode().strip()
        return self.track(created)
