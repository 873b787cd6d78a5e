"""Blocks shared between the pshm CLI and CPython's
multiprocessing.shared_memory.SharedMemory, in both directions."""
import json
import os
import time
import unittest
from multiprocessing import resource_tracker, shared_memory

from pshmtest import CliTestCase, attach_python, shm_exists, unique_name


class CliToPython(CliTestCase):
    def test_size_and_bytes(self):
        name = self.create(100)
        data = bytes(range(100))
        self.pshm_ok("write", name, input=data)
        shm = attach_python(name)
        self.addCleanup(shm.close)
        self.assertEqual(shm.name, name)
        self.assertEqual(shm.size, 100)
        self.assertEqual(bytes(shm.buf), data)

    def test_python_sees_offset_writes_live(self):
        name = self.create(4096)
        shm = attach_python(name)
        self.addCleanup(shm.close)
        self.pshm_ok("write", name, "--offset", "4000", input=b"tail")
        self.assertEqual(bytes(shm.buf[4000:4004]), b"tail")

    def test_python_writes_pshm_reads(self):
        name = self.create(64)
        shm = attach_python(name)
        self.addCleanup(shm.close)
        shm.buf[5:10] = b"hello"
        self.assertEqual(self.pshm_ok("read", name, "--offset", "5", "--length", "5"),
                         b"hello")
        self.assertEqual(self.pshm_ok("read", name), bytes(shm.buf))

    def test_odd_size(self):
        name = self.create(10)
        shm = attach_python(name)
        self.addCleanup(shm.close)
        self.assertEqual(shm.size, 10)
        self.assertEqual(os.stat("/dev/shm/" + name).st_size, 10)

    def test_leading_slash(self):
        bare = unique_name("slash")
        created = self.create(32, "/" + bare)
        self.assertEqual(created, bare)
        for spelling in (bare, "/" + bare):
            with self.subTest(spelling=spelling):
                shm = attach_python(spelling)
                self.assertEqual(shm.size, 32)
                shm.buf[0] = 0x5A
                shm.close()
                self.assertEqual(json.loads(self.pshm_ok("info", spelling, "--json"))["name"],
                                 bare)
                self.assertEqual(self.pshm_ok("read", spelling, "--length", "1"), b"Z")


class PythonToCli(CliTestCase):
    def python_block(self, size, name=None):
        shm = shared_memory.SharedMemory(name=name or unique_name("py"), create=True, size=size)
        self.track(shm.name)
        self.addCleanup(shm.close)
        return shm

    def test_info_and_read(self):
        shm = self.python_block(4096)
        shm.buf[:4] = b"\x00\x01\xfe\xff"
        shm.buf[-3:] = b"end"
        info = json.loads(self.pshm_ok("info", shm.name, "--json"))
        self.assertEqual(info["size"], shm.size)
        self.assertEqual(int(info["mode"], 8), os.stat("/dev/shm/" + shm.name).st_mode & 0o7777)
        self.assertEqual(self.pshm_ok("read", shm.name), bytes(shm.buf))
        shm.unlink()

    def test_odd_size(self):
        shm = self.python_block(10)
        self.assertEqual(json.loads(self.pshm_ok("info", shm.name, "--json"))["size"], 10)
        self.assertEqual(len(self.pshm_ok("read", shm.name)), 10)
        shm.unlink()

    def test_pshm_writes_python_reads(self):
        shm = self.python_block(128)
        self.pshm_ok("write", "/" + shm.name, "--offset", "100", input=b"from pshm")
        self.assertEqual(bytes(shm.buf[100:109]), b"from pshm")
        shm.unlink()

    def test_listed_by_ls(self):
        shm = self.python_block(77)
        listing = {e["name"]: e for e in json.loads(self.pshm_ok("ls", "--json"))}
        self.assertEqual(listing[shm.name]["size"], 77)
        shm.unlink()

    def test_rm_makes_python_attach_fail(self):
        shm = self.python_block(64)
        self.pshm_ok("rm", shm.name)
        self.assertFalse(shm_exists(shm.name))
        with self.assertRaises(FileNotFoundError):
            shared_memory.SharedMemory(name=shm.name)
        # Python's own tracker still remembers the block it created.
        resource_tracker.unregister(shm._name, "shared_memory")


class FailedAttachNeverUnlinks(CliTestCase):
    """CPython gh-153279: a failed attach must leave the object alone."""

    def empty_object(self):
        name = self.track(unique_name("empty"))
        fd = os.open("/dev/shm/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.close(fd)
        return name

    def test_attach_hold_fails_and_object_stays(self):
        names = []
        for extra in ([], ["--no-track"], ["--readonly"]):
            with self.subTest(extra=extra):
                name = self.empty_object()
                names.append(name)
                err = self.pshm_fails("attach", name, "--hold", *extra)
                self.assertIn(name, err)
                self.assertIn("empty", err)
        time.sleep(0.5)  # time for a tracker, had one been started, to act
        for name in names:
            self.assertTrue(shm_exists(name), name)
            self.assertEqual(os.stat("/dev/shm/" + name).st_size, 0)

    def test_read_write_fail_and_object_stays(self):
        name = self.empty_object()
        for args in (["read", name], ["write", name]):
            with self.subTest(args=args):
                err = self.pshm_fails(*args, input=b"x")
                self.assertIn(name, err)
                self.assertTrue(shm_exists(name))

    def test_info_reports_size_zero(self):
        name = self.empty_object()
        self.assertEqual(json.loads(self.pshm_ok("info", name, "--json"))["size"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
