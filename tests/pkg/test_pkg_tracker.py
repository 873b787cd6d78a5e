"""pshm's tracker, for Python handles too, with real processes.

A block its creator tracked is removed once every holder of any kind (a C
program, `pshm attach --hold`, a Python process) is gone, never while one
remains; a Python process killed with SIGKILL leaks nothing; untracked
blocks, and blocks made by CPython's own module, are never removed by pshm;
attaching never changes that.

"Never while one remains" is shown by order, not by time: the creator also
makes a SENTINEL block nobody else holds, and its stderr is a file (so its
tracker reports there, docs/manual.md). Once the tracker has reported
removing the sentinel, it has made its pass over the creator's blocks; the
held block must not be in that report and must still be there.
"""
import os
import signal
import subprocess
import tempfile
from multiprocessing import resource_tracker
from multiprocessing import shared_memory as cpython

from pkgtest import (PSHM, PkgCase, SharedMemory, helper, main, need_cli, needs_track, pshm_only,
                     python_popen, read_line, shm_exists, unique_name, wait_for, wait_gone)

# A Python holder: argv is ACTION:NAME ... with ACTION one of create,
# create_untracked, attach, attach_untracked. It prints "ready", then
# holds its handles until stdin reaches EOF, then exits without closing or
# unlinking anything (as a program that forgets to).
HOLDER = """
handles = []
for arg in sys.argv[1:]:
    action, name = arg.split(":", 1)
    kw = {"track": False} if action.endswith("_untracked") else {}
    if action.startswith("create"):
        handles.append(SharedMemory(name, create=True, size=64, **kw))
    else:
        handles.append(SharedMemory(name, **kw))
handles[0].buf[0] = 42
print("ready", flush=True)
sys.stdin.read()
"""


class TrackerCase(PkgCase):
    def setUp(self):
        super().setUp()
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.report = os.path.join(tmp.name, "creator.err")

    def creator_stderr(self):
        """A file for a creator's stderr, where its tracker reports."""
        f = open(self.report, "a")
        self.addCleanup(f.close)
        return f

    def python_holder(self, *actions, stderr=subprocess.DEVNULL):
        """Start a Python holder; returns it once it holds everything."""
        proc = self.keep(python_popen(HOLDER, *actions, stderr=stderr))
        self.assertEqual(read_line(proc), "ready")
        return proc

    def release(self, proc):
        """Let a Python or CLI holder exit normally (stdin EOF)."""
        proc.stdin.close()
        self.assertEqual(proc.wait(timeout=15), 0)

    def c_holder(self, *args, stderr=subprocess.DEVNULL):
        """Start tracker_probe ARGS (create/attach/many ...); it holds."""
        proc = self.keep(subprocess.Popen([helper("tracker_probe"), *args], text=True,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=stderr))
        self.assertTrue(read_line(proc).startswith("ready"))
        return proc

    def end_c_holder(self, proc):
        """SIGTERM: tracker_probe exits at once, closing nothing."""
        proc.terminate()
        proc.wait(timeout=15)

    def cli_holder(self, name):
        need_cli()
        proc = self.keep(subprocess.Popen([PSHM, "attach", name, "--hold"], text=True,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL))
        self.assertEqual(read_line(proc), name)
        return proc

    def names(self, tag):
        """Names for a held block and its creator's sentinel (both tracked
        for cleanup)."""
        return self.track(unique_name(tag)), self.track(unique_name(tag + "_sentinel"))

    def reported(self):
        with open(self.report) as f:
            return f.read()

    def assert_outlives_creator(self, held, sentinel):
        """The creator's tracker removed and reported the sentinel, and
        neither removed nor reported the held block."""
        self.assertTrue(wait_gone(sentinel), "the creator's tracker never removed the sentinel")
        self.assertTrue(wait_for(lambda: sentinel in self.reported()),
                        "no tracker report names the sentinel: %r" % self.reported())
        self.assertNotIn(held, self.reported())
        self.assertTrue(shm_exists(held), "removed while a holder remained")


@pshm_only
class AcrossLanguages(TrackerCase):
    def test_python_holder_keeps_a_c_block(self):
        prefix = unique_name("c_py")
        held, sentinel = self.track(prefix + "_0"), self.track(prefix + "_1")
        creator = self.c_holder("many", prefix, "2", stderr=self.creator_stderr())
        holder = self.python_holder("attach:" + held)
        self.end_c_holder(creator)
        self.assert_outlives_creator(held, sentinel)
        self.release(holder)
        self.assertTrue(wait_gone(held), "not removed after its last holder left")

    def check_holder_outlives_python_creator(self, tag, start_holder, end_holder):
        """A Python process creates HELD and a sentinel and exits; the
        holder START_HOLDER(held) started keeps HELD until END_HOLDER."""
        held, sentinel = self.names(tag)
        creator = self.python_holder("create:" + held, "create:" + sentinel,
                                     stderr=self.creator_stderr())
        holder = start_holder(held)
        self.release(creator)
        self.assert_outlives_creator(held, sentinel)
        end_holder(holder)
        self.assertTrue(wait_gone(held), "not removed after its last holder left")

    def test_c_holder_keeps_a_python_block(self):
        self.check_holder_outlives_python_creator(
            "py_c", lambda held: self.c_holder("attach", held), self.end_c_holder)

    def test_cli_holder_keeps_a_python_block(self):
        self.check_holder_outlives_python_creator("py_cli", self.cli_holder, self.release)

    def test_python_holder_keeps_a_python_block(self):
        self.check_holder_outlives_python_creator(
            "py_py", lambda held: self.python_holder("attach:" + held), self.release)

    def test_untracked_python_attach_still_holds(self):
        # track=False skips registering, not holding: the flock stays.
        self.check_holder_outlives_python_creator(
            "py_untr", lambda held: self.python_holder("attach_untracked:" + held),
            self.release)

    def test_every_kind_of_holder_at_once(self):
        held, sentinel = self.names("py_all")
        creator = self.python_holder("create:" + held, "create:" + sentinel,
                                     stderr=self.creator_stderr())
        holders = [self.c_holder("attach", held), self.cli_holder(held),
                   self.python_holder("attach:" + held)]
        self.release(creator)
        self.assert_outlives_creator(held, sentinel)
        self.end_c_holder(holders[0])
        self.release(holders[1])
        # Two holders gone, the Python one remains (a weaker check than the
        # sentinel's: a wrong removal could come moments later).
        self.assertTrue(shm_exists(held))
        self.release(holders[2])
        self.assertTrue(wait_gone(held))


class Sigkill(TrackerCase):
    def test_killing_the_only_holder_leaks_nothing(self):
        for sig in (signal.SIGKILL, signal.SIGTERM):
            with self.subTest(signal=sig):
                name = self.track(unique_name("kill"))
                proc = self.python_holder("create:" + name)
                proc.send_signal(sig)
                proc.wait(timeout=15)
                self.assertTrue(wait_gone(name), "a killed Python process leaked its block")

    @pshm_only
    def test_sigkill_of_the_creator_while_c_holds(self):
        held, sentinel = self.names("kill_c")
        creator = self.python_holder("create:" + held, "create:" + sentinel,
                                     stderr=self.creator_stderr())
        holder = self.c_holder("attach", held)
        creator.send_signal(signal.SIGKILL)
        creator.wait(timeout=15)
        self.assert_outlives_creator(held, sentinel)
        self.end_c_holder(holder)
        self.assertTrue(wait_gone(held))

    @pshm_only
    def test_sigkill_of_an_attacher_removes_nothing(self):
        ours = self.block(64)  # this process created it and holds it
        proc = self.python_holder("attach:" + ours.name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=15)
        self.assertTrue(shm_exists(ours.name))
        self.assertEqual(ours.buf[0], 42)  # the holder's write is there


class Untracked(TrackerCase):
    @needs_track
    def test_track_false_blocks_stay_until_unlinked(self):
        kept, sentinel = self.names("untracked")
        creator = self.python_holder("create_untracked:" + kept, "create:" + sentinel,
                                     stderr=self.creator_stderr())
        self.release(creator)
        self.assertTrue(wait_gone(sentinel), "the creator's tracker never ran")
        # CPython's tracker reports a count, not names; pshm's names the sentinel.
        self.assertTrue(wait_for(lambda: "resource_tracker" in self.reported()
                                 or sentinel in self.reported()), self.reported())
        self.assertNotIn(kept, self.reported())
        self.assertTrue(shm_exists(kept))
        shm = SharedMemory(kept, track=False)
        self.addCleanup(self._drop, shm)
        self.assertEqual(shm.buf[0], 42)

    @pshm_only
    def test_attach_never_makes_a_block_removable(self):
        # An untracked pshm block and a block made by CPython's own module,
        # both attached with track=True by a Python process that exits.
        untracked = self.block(64, track=False)
        theirs = cpython.SharedMemory(unique_name("cpython_made"), create=True, size=64)
        self.track(theirs.name)
        resource_tracker.unregister(theirs._name, "shared_memory")
        self.addCleanup(theirs.close)
        sentinel = self.track(unique_name("attach_sentinel"))
        holder = self.python_holder("attach:" + untracked.name, "attach:" + theirs.name,
                                    "create:" + sentinel, stderr=self.creator_stderr())
        self.release(holder)
        self.assertTrue(wait_gone(sentinel), "the attacher's tracker never ran")
        self.assertTrue(wait_for(lambda: sentinel in self.reported()), self.reported())
        self.assertTrue(shm_exists(untracked.name))
        self.assertTrue(shm_exists(theirs.name))
        self.assertEqual(untracked.buf[0], 42)

    @pshm_only
    def test_sigkilled_attacher_of_an_untracked_c_block(self):
        name = self.track(unique_name("c_untracked"))
        self.cli_ok("create", "--name", name, "--size", "64")
        sentinel = self.track(unique_name("c_untracked_sentinel"))
        holder = self.python_holder("attach:" + name, "create:" + sentinel,
                                    stderr=self.creator_stderr())
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=15)
        self.assertTrue(wait_gone(sentinel), "the attacher's tracker never ran")
        self.assertTrue(wait_for(lambda: sentinel in self.reported()), self.reported())
        self.assertTrue(shm_exists(name))


FORKER = """
shm = SharedMemory(sys.argv[1], create=True, size=64)
shm.buf[0] = 1
pid = os.fork()
if pid:
    os._exit(0)          # the parent leaves at once, closing nothing
sys.stdin.readline()     # the child still holds the parent's handle
shm.buf[0] += 1
print(shm.buf[0], flush=True)
sys.stdin.read()
"""


class Fork(TrackerCase):
    def test_forked_child_holds_after_the_parent_is_gone(self):
        name = self.track(unique_name("fork"))
        proc = self.keep(python_popen(FORKER, name, stderr=subprocess.DEVNULL))
        # The parent exits at once; its stdout lives on in the forked child.
        self.assertEqual(proc.wait(timeout=15), 0)
        self.assertTrue(shm_exists(name))
        proc.stdin.write("go\n")
        proc.stdin.flush()
        self.assertEqual(read_line(proc), "2")
        proc.stdin.close()
        self.assertTrue(wait_gone(name), "not removed once the forked child exited")


if __name__ == "__main__":
    main()
