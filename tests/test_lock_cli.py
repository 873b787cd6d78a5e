"""`pshm lock NAME [--shared] [--timeout SECONDS] -- COMMAND`, run as real
processes: the command's status passes through, holders exclude each other
(shared ones share), timeouts give status 1, a SIGKILLed holder blocks no
one and the next holder says so, and the tracker removes the lock after."""
import os
import signal
import subprocess
import tempfile
import time
import unittest

from pshmtest import PSHM, CliTestCase, read_line, run, unique_name, wait_gone


class Lock(CliTestCase):
    def holder(self, name, *opts):
        """A `pshm lock` holding `name` around a shell that prints its pid
        once inside, then sleeps; returns (pshm process, shell pid)."""
        proc = self.keep(subprocess.Popen(
            [PSHM, "lock", name, *opts, "--", "sh", "-c", "echo $$; exec sleep 60"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        pid = int(read_line(proc))
        self.addCleanup(self.kill_quietly, pid)
        return proc, pid

    @staticmethod
    def kill_quietly(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def release(self, holder):
        proc, pid = holder
        os.kill(pid, signal.SIGTERM)
        self.assertEqual(proc.wait(10), 128 + signal.SIGTERM)

    def test_the_commands_status_passes_through(self):
        name = unique_name("lk")
        self.assertEqual(run("lock", name, "--", "sh", "-c", "exit 7").returncode, 7)
        res = run("lock", name, "--", "sh", "-c", "echo in; kill -TERM $$")
        self.assertEqual((res.returncode, res.stdout), (128 + signal.SIGTERM, b"in\n"))
        self.assertEqual(run("lock", name, "--", "/nonexistent/cmd").returncode, 127)
        self.assertTrue(wait_gone(name, 10), "the tracker left the lock behind")

    def test_the_tracker_removes_a_lock_without_a_word(self):
        """A named lock is meant to go once unused: unlike a block nobody
        unlinked, its removal is not worth a message on stderr."""
        name = unique_name("lk")
        res = run("lock", name, "--", "true")
        self.assertEqual((res.returncode, res.stderr), (0, b""))
        self.assertTrue(wait_gone(name, 10), "the tracker left the lock behind")
        # An ordinary tracked block left behind is still reported.
        other = unique_name("blk")
        res = run("create", "--name", other, "--size", "8", "--track", "--hold")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(b"that no process unlinked: " + other.encode(), res.stderr)

    def test_holders_exclude_and_timeouts_give_status_1(self):
        name = unique_name("lk")
        held = self.holder(name)
        for opts in (["--timeout", "0"], ["--timeout", "0.3"], ["--shared", "--timeout", "0"]):
            with self.subTest(opts=opts):
                t0 = time.monotonic()
                err = self.pshm_fails("lock", name, *opts, "--", "echo", "no")
                self.assertIn("not acquired within the timeout", err)
                self.assertIn(name, err)
                self.assertGreaterEqual(time.monotonic() - t0, float(opts[-1]))
        self.release(held)
        self.assertEqual(self.pshm_ok("lock", name, "--timeout", "5", "--", "echo", "yes"),
                         b"yes\n")

    def test_shared_holders_share(self):
        name = unique_name("lk")
        first = self.holder(name, "--shared")
        second = self.holder(name, "--shared", "--timeout", "5")
        self.pshm_fails("lock", name, "--timeout", "0", "--", "true")
        self.release(first)
        self.release(second)
        self.pshm_ok("lock", name, "--timeout", "5", "--", "true")

    def test_a_killed_holder_blocks_no_one(self):
        name = unique_name("lk")
        proc, shell = self.holder(name)
        with tempfile.TemporaryFile() as err:
            waiter = self.keep(subprocess.Popen(
                [PSHM, "lock", name, "--timeout", "30", "--", "echo", "got it"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err))
            time.sleep(0.3)  # usually waiting by now; either way it must get it
            self.assertIsNone(waiter.poll(), "the waiter did not wait for the holder")
            proc.kill()
            proc.wait(10)
            self.assertEqual(read_line(waiter, 20), "got it")
            self.assertEqual(waiter.wait(10), 0)
            err.seek(0)
            self.assertIn(b"the previous holder died holding it", err.read())
        os.kill(shell, signal.SIGKILL)  # the dead holder's command ran on
        self.assertTrue(wait_gone(name, 10), "the tracker left the lock behind")

    def test_usage_errors(self):
        for args in (["lock"], ["lock", "x"], ["lock", "x", "--timeout", "-1", "--", "true"],
                     ["lock", "x", "--timeout", "soon", "--", "true"],
                     ["lock", "x", "--bogus", "--", "true"]):
            with self.subTest(args=args):
                self.assertIn("pshm lock --help", self.pshm_fails(*args, status=2))
        self.assertIn("a/b\": block name may not contain", self.pshm_fails("lock", "a/b", "--", "true"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
