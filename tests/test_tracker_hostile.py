"""The resource tracker under hostile conditions (issue 13, items 3-8), with
real processes: the CLI, tests/helpers/tracker_probe.c and CPython.

This process makes itself a child subreaper, so every pshm-tracker that a
program it starts leaves behind is adopted by it: a test can name the
tracker of a given program (the one that appeared while that program
started), signal it, and learn exactly when it has exited (waitpid). Every
wait is bounded; whatever a test started, tracker included, is gone and
every block it made is removed before the next test begins.
"""
import ctypes
import fcntl
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from pshmtest import PSHM, SHM_DIR, CliTestCase, read_line, remove_block, shm_exists, spawn, \
    unique_name, wait_gone

PROBE = os.environ.get("PSHM_HELPER_tracker_probe", "tracker_probe")

# The longest any one step may take before the test calls it a hang. The
# tracker acts within milliseconds; this only bounds a broken build.
BOUND = 15.0

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def eventually(predicate, seconds):
    """Poll predicate until it holds (return its value) or seconds pass (None)."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value or None
        time.sleep(0.05)


class Trackers:
    """The trackers this (subreaper) process has adopted.

    A tracker is cloned from its program without an exec, so until it names
    itself "pshm-tracker" it bears its program's name. It is our child
    before its program prints anything (the program waits for the tracker's
    parent to exit, and we adopt the tracker then), so a scan right after a
    program's first line finds that program's tracker. The programs we
    started ourselves are our children too and are excluded by pid.
    """

    COMMS = {"pshm-tracker"} | {os.path.basename(path)[:15] for path in (PSHM, PROBE)}

    def __init__(self):
        self.known = set()    # every tracker pid seen so far
        self.running = set()  # those not yet reaped
        self.spawned = {}     # pid: Popen of each program we started

    @staticmethod
    def stat(pid):
        """(comm, ppid) of a process, or None if it is gone."""
        try:
            with open("/proc/%d/stat" % pid) as f:
                stat = f.read()
        except OSError:
            return None
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        return comm, int(stat[stat.rindex(")") + 2:].split()[1])

    def ours(self, pid):
        """Whether pid is a program we started and have not reaped yet."""
        proc = self.spawned.get(pid)
        return proc is not None and proc.returncode is None

    def _children(self):
        found = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or self.ours(int(entry)):
                continue
            stat = self.stat(int(entry))
            if stat is not None and stat[0] in self.COMMS and stat[1] == os.getpid():
                found.add(int(entry))
        return found

    def new(self):
        """Trackers adopted since the last call: those of the programs started
        since then (a tracker exists before its program prints anything)."""
        fresh = self._children() - self.known
        self.known |= fresh
        self.running |= fresh
        return fresh

    def _reap(self):
        for pid in list(self.running):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                self.running.discard(pid)

    def wait_exit(self, pids, seconds):
        """True once every tracker in pids has exited, within seconds."""
        def done():
            self._reap()
            return not set(pids) & self.running
        return bool(eventually(done, seconds))

    def settle(self):
        """End every tracker still running: wait, then kill what remains."""
        self.new()
        if self.wait_exit(self.running, 10):
            return
        for pid in self.running:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        self.running.clear()


TRACKERS = Trackers()

CPYTHON_CREATE = """
import sys
from multiprocessing import resource_tracker, shared_memory
shm = shared_memory.SharedMemory(name=sys.argv[1], create=True, size=4096)
resource_tracker.unregister(shm._name, "shared_memory")  # CPython's must not remove it
shm.close()
"""


class HostileCase(CliTestCase):
    def setUp(self):
        super().setUp()
        self._locks = []
        TRACKERS.new()

    def tearDown(self):
        for fd in self._locks:
            os.close(fd)
        super().tearDown()   # kills our processes, removes our blocks
        TRACKERS.settle()
        super().tearDown()   # a tracker ended early may have left one behind

    def keep(self, proc):
        TRACKERS.spawned[proc.pid] = proc
        return super().keep(proc)

    def hold(self, *args):
        """Start a holding CLI; return it, the name it printed, its trackers."""
        proc = self.keep(spawn(*args))
        name = read_line(proc)
        self.assertTrue(shm_exists(name), "%r printed %r" % (args, name))
        return proc, name, TRACKERS.new()

    def probe(self, *args, stderr=subprocess.DEVNULL):
        """Start tracker_probe; wait for "ready"; return it and its trackers."""
        proc = self.keep(subprocess.Popen([PROBE, *args], stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=stderr))
        line = read_line(proc)
        self.assertTrue(line.startswith("ready"), "tracker_probe %r: %r" % (args, line))
        return proc, TRACKERS.new()

    def release(self, proc):
        """End a holding CLI the normal way: EOF on its stdin."""
        proc.stdin.close()
        self.assertEqual(proc.wait(timeout=BOUND), 0)

    def lock_exclusive(self, name):
        fd = os.open(os.path.join(SHM_DIR, name), os.O_RDWR)
        self._locks.append(fd)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd


class CapturedOutput(HostileCase):
    """Item 3: a program's captured stdout/stderr reach EOF when the program
    exits, even while its tracker still waits for another holder."""

    def test_capture_ends_while_another_holder_lives(self):
        name = self.track(unique_name("capture"))
        creator, _, _ = self.hold("create", "--name", name, "--size", "4096", "--track",
                                  "--hold")
        other, _, _ = self.hold("attach", name, "--hold")
        variants = {
            "subprocess.run": [PSHM, "attach", name, "--hold"],
            "shell $(...)": ["bash", "-c", 'out=$("$0" attach "$1" --hold </dev/null 2>&1); '
                             'printf "%s|%d" "$out" "$?"', PSHM, name],
        }
        expected = {"subprocess.run": name.encode() + b"\n",
                    "shell $(...)": name.encode() + b"|0"}
        for label, argv in variants.items():
            with self.subTest(variant=label):
                try:
                    res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                         timeout=BOUND)
                except subprocess.TimeoutExpired:
                    self.fail("%s of 'pshm attach %s --hold' still open after %ss: the "
                              "tracker holds the caller's output" % (label, name, BOUND))
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertEqual(res.stdout, expected[label])
                self.assertIsNone(other.poll(), "the other holder should still live")
        self.release(creator)
        self.release(other)
        self.assertTrue(wait_gone(name, 10), name + " outlived its last holder")

    def test_capture_of_a_tracked_creator_ends_while_another_holder_lives(self):
        # The same for a program whose own tracker must wait: it created the
        # block tracked, and another program attached before it left.
        name = self.track(unique_name("capture_creator"))
        creator = self.keep(subprocess.Popen(
            [PSHM, "create", "--name", name, "--size", "4096", "--track", "--hold"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        self.addCleanup(creator.stderr.close)
        self.assertEqual(read_line(creator), name)
        other, _, _ = self.hold("attach", name, "--hold", "--no-track")
        try:
            _, err = creator.communicate(input=b"", timeout=BOUND)
        except subprocess.TimeoutExpired:
            self.fail("the captured output of 'pshm create --track --hold' still open %ss "
                      "after EOF on its stdin: its tracker holds it" % BOUND)
        self.assertEqual(creator.returncode, 0, err)
        self.assertIsNone(other.poll(), "the other holder should still live")
        self.assertTrue(shm_exists(name), name + " removed while still held")
        self.release(other)
        self.assertTrue(wait_gone(name, 10), name + " outlived its last holder")


class IndependentBlocks(HostileCase):
    """Item 4: each tracked block is removed soon after its own last holder
    leaves, whatever other blocks of the same tracker are still held."""

    def check_released_first(self, prefix, first):
        names = [self.track("%s_%d" % (prefix, i)) for i in (0, 1, 2)]
        free, busy, unheld = names[first], names[1 - first], names[2]
        holders = {}
        try:
            with tempfile.NamedTemporaryFile(prefix="pshm-hostile-", suffix=".err") as err:
                # The creator's stderr, which its tracker inherits: its messages go there.
                creator, _ = self.probe("many", prefix, "3", stderr=err)
                # Attach before the creator goes, or the tracker removes a free block
                # at once. --no-track: only the creator's tracker may act on them.
                for n in (free, busy):
                    holders[n] = self.hold("attach", n, "--hold", "--no-track")[0]
                creator.terminate()  # the probe _exits on SIGTERM: nothing unlinked
                creator.wait(timeout=BOUND)
                # The unheld block goes at once; once the tracker has said so, it
                # has looked at every block, so `free` is released only now.
                self.assertTrue(wait_gone(unheld, 10), unheld + " outlived its creator")
                self.assertIsNotNone(eventually(lambda: self.line_naming(err.name, unheld), 5),
                                     "the tracker said nothing about " + unheld)
                self.release(holders[free])
                self.assertTrue(wait_gone(free, 10),
                                "%s stayed after its last holder left, while %s is still "
                                "held" % (free, busy))
                self.assertTrue(shm_exists(busy), busy + " removed while still held")
                self.assertIsNone(holders[busy].poll())
                line = eventually(lambda: self.line_naming(err.name, free), 5)
                self.assertIsNotNone(line, "the tracker said nothing about " + free)
                self.assertIn("removed", line)
                self.assertNotIn(busy, line, "the message names a block it did not remove")
                self.release(holders[busy])
                self.assertTrue(wait_gone(busy, 10), busy + " outlived its last holder")
        finally:
            # The next round reuses the names: nothing of this one may remain.
            for proc in holders.values():
                proc.kill()
                proc.wait()
            TRACKERS.settle()
            for name in names:
                remove_block(name)

    @staticmethod
    def line_naming(path, name):
        """The first complete line of the file at path that holds name, or None."""
        with open(path, "rb") as f:
            lines = f.read().decode(errors="replace").split("\n")[:-1]
        return next((line for line in lines if name in line), None)

    def test_each_block_removed_after_its_own_last_holder(self):
        # Both orders, with the same two names: today's tracker waits for its
        # blocks one at a time in the order of its table, so whichever order
        # the names hash to, one of the two rounds shows the wait.
        prefix = unique_name("indep")
        for first in (0, 1):
            with self.subTest(released_first="%s_%d" % (prefix, first)):
                self.check_released_first(prefix, first)


class TrackerCannotStart(HostileCase):
    """Item 5: a tracked create whose tracker cannot start fails loudly and
    leaves nothing behind."""

    def test_tracked_create_under_low_nofile(self):
        # Search the limits at which the block's descriptor fits but the
        # tracker's socketpair may not (below 4 the loader itself fails).
        said_tracker = False
        for limit in range(4, 12):
            with self.subTest(nofile=limit):
                name = self.track(unique_name("nofile"))

                def low_nofile(limit=limit):
                    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
                res = subprocess.run([PSHM, "create", "--name", name, "--size", "4096",
                                      "--track", "--hold"], stdin=subprocess.DEVNULL,
                                     capture_output=True, timeout=BOUND,
                                     preexec_fn=low_nofile)
                TRACKERS.new()
                if res.returncode == 0:
                    self.assertTrue(wait_gone(name, 10),
                                    "RLIMIT_NOFILE %d: exit 0 (stderr %r), yet %s outlived its "
                                    "only holder: it was never tracked"
                                    % (limit, res.stderr, name))
                else:
                    self.assertFalse(shm_exists(name), "a failed create left " + name)
                    self.assertTrue(res.stderr.strip(), "failed without a word")
                    said_tracker |= b"tracker" in res.stderr.lower()
        self.assertTrue(said_tracker, "no limit made create report that the tracker could "
                                      "not start")


class SigtermTogether(HostileCase):
    """Item 6: SIGTERM to a program and its tracker at once (systemd's stop)
    still cleans up."""

    def test_sigterm_to_program_and_tracker(self):
        proc, name, trackers = self.hold("create", "--size", "4096", "--track", "--hold")
        self.track(name)
        self.assertEqual(len(trackers), 1, "expected one tracker for the creator")
        (tracker,) = trackers
        # Its name is the last thing the tracker sets up: signals are set by then.
        self.assertTrue(eventually(lambda: (Trackers.stat(tracker) or ("",))[0] ==
                                   "pshm-tracker", 10), "the tracker never named itself")
        os.kill(proc.pid, signal.SIGTERM)
        os.kill(tracker, signal.SIGTERM)
        proc.wait(timeout=BOUND)
        self.assertTrue(wait_gone(name, 10), name + " leaked: SIGTERM killed its tracker")
        self.assertTrue(TRACKERS.wait_exit([tracker], 10), "the tracker did not exit")


class ForeignLock(HostileCase):
    """Item 7: a foreign exclusive flock makes opening a block fail after a
    bounded wait with the block's name, not hang."""

    def test_foreign_exclusive_flock(self):
        name = self.track(self.pshm_ok("list", "new", "--name", unique_name("flock"), "--",
                                       "1", "'two'").decode().strip())
        commands = [["read", name], ["list", "show", name], ["attach", name, "--hold"]]
        fd = self.lock_exclusive(name)
        for args in commands:
            with self.subTest(args=args, locked=True):
                try:
                    res = subprocess.run([PSHM, *args], stdin=subprocess.DEVNULL,
                                         capture_output=True, timeout=20)
                except subprocess.TimeoutExpired:
                    self.fail("pshm %s still waiting for a foreign lock after 20 s"
                              % " ".join(args))
                self.assertNotEqual(res.returncode, 0, res.stdout)
                self.assertIn(name.encode(), res.stderr)
        fcntl.flock(fd, fcntl.LOCK_UN)
        wanted = [b"two", b"'two'", name.encode()]
        for args, needle in zip(commands, wanted):
            with self.subTest(args=args, locked=False):
                res = subprocess.run([PSHM, *args], stdin=subprocess.DEVNULL,
                                     capture_output=True, timeout=BOUND)
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertIn(needle, res.stdout)


class CreatorDecides(HostileCase):
    """Item 8: only a block's creator decides whether it is cleaned up;
    attaching, tracked or not, never turns that on."""

    def check_attach_keeps(self, keep):
        # Positive control: a tracked-created block, attached together with
        # `keep` by one process, so the same tracker sees both.
        control = self.track(unique_name("control"))
        creator, _, creator_trackers = self.hold("create", "--name", control, "--size",
                                                 "4096", "--track", "--hold")
        probe, probe_trackers = self.probe("attach_each", control, keep)
        # And a CLI attach with its default tracking, held and released.
        cli, _, cli_trackers = self.hold("attach", keep, "--hold")
        self.release(cli)
        self.release(creator)
        probe.terminate()
        probe.wait(timeout=BOUND)
        trackers = creator_trackers | probe_trackers | cli_trackers
        self.assertTrue(TRACKERS.wait_exit(trackers, 10), "a tracker did not finish")
        self.assertFalse(shm_exists(control),
                         "control: the tracked-created %s outlived every holder" % control)
        self.assertTrue(shm_exists(keep), "an attacher's tracker removed " + keep)

    def test_attach_never_removes_an_untracked_block(self):
        keep = self.track(unique_name("untracked"))
        self.pshm_ok("create", "--name", keep, "--size", "4096")
        self.check_attach_keeps(keep)

    def test_attach_never_removes_a_cpython_block(self):
        keep = self.track(unique_name("cpython"))
        subprocess.run([sys.executable, "-c", CPYTHON_CREATE, keep], check=True,
                       timeout=BOUND)
        self.assertTrue(shm_exists(keep))
        self.check_attach_keeps(keep)


def main():
    become_subreaper()
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    # A failed subtest counts against the test it belongs to.
    failed = {getattr(test, "test_case", test).id() for test, _ in
              result.failures + result.errors}
    TRACKERS.settle()
    print("%d passed, %d failed" % (result.testsRun - len(failed), len(failed)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
