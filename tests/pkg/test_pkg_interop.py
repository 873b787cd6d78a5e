"""The pshm package beside CPython's own module, the pshm CLI and a C
program (tests/helpers/list_tool.c, public API only): blocks and lists made
by any one of them are read and written by the others, with the same
values, reprs and formats, and for ASCII contents byte-identical blocks.

With PSHM_TEST_MODULE=cpython the "package" is CPython's module itself, so
the CLI and C sides are checked against CPython's behaviour.
"""
import os
import subprocess
import sys
import unittest
from multiprocessing import resource_tracker
from multiprocessing import shared_memory as cpython

from pkgtest import (CPYTHON, CPYTHON_LIST_LAYOUT_OK, MODULE_LIST_LAYOUT_OK, PkgCase, SharedMemory, ShareableList, helper,
                     main, pshm_only, shm_exists, unique_name)

# ASCII values of every type: both implementations lay these out identically.
ASCII_VALUES = [0, 1, -1, -42, 2**63 - 1, -2**63, 0.1 + 0.2, -1.5, -0.0, 5e-324,
                float("inf"), float("-inf"), True, False, None, "", "a", "x" * 8,
                "tab\there\nquote'\"", b"", b"\x00\x01\xff", b"z" * 16, "nul\x00inside"]
# Non-ASCII text whose UTF-8 fits the storage CPython gives it (8 bytes a
# character at most 8 characters): both sides read and write it.
UNICODE_VALUES = ["é", "€", "éa", "𝄞", "日本"]

LAYOUT_38 = "CPython 3.8's ShareableList stores item sizes, not the offsets of 3.9+ and libpshm"
# For tests where CPython's ShareableList is one side.
needs_list_layout = unittest.skipUnless(CPYTHON_LIST_LAYOUT_OK, LAYOUT_38)
# For tests where the module under test's list meets the CLI or C.
module_list_layout = unittest.skipUnless(MODULE_LIST_LAYOUT_OK, LAYOUT_38)


def same(a, b):
    return type(a) is type(b) and repr(a) == repr(b)


def block_bytes(name):
    with open(os.path.join("/dev/shm", name), "rb") as f:
        return f.read()


def tool(*args):
    """Run list_tool; its stdout without the final newline."""
    res = subprocess.run([helper("list_tool"), *map(str, args)], capture_output=True,
                         text=True, timeout=30)
    if res.returncode != 0:
        raise AssertionError("list_tool %r: %s%s" % (args[:3], res.stdout, res.stderr))
    return res.stdout[:-1] if res.stdout.endswith("\n") else res.stdout


class InteropCase(PkgCase):
    def cpython_attach(self, name):
        """Attach with CPython's SharedMemory, out of CPython's tracker (it
        would remove the block when this process exits). When CPython is
        also the module under test, the creator's unlink unregisters it."""
        shm = cpython.SharedMemory(name)
        if not CPYTHON:
            resource_tracker.unregister(shm._name, "shared_memory")
        self.addCleanup(shm.close)
        return shm

    def cpython_list_attach(self, name):
        sl = cpython.ShareableList(name=name)
        if not CPYTHON:
            resource_tracker.unregister(sl.shm._name, "shared_memory")
        self.addCleanup(sl.shm.close)
        return sl

    def cpython_list(self, values, name=None):
        sl = cpython.ShareableList(values, name=name)
        self.track(sl.shm.name)
        self.addCleanup(self._drop, sl.shm)
        return sl

    def attach(self, name, unlink=True):
        """Attach with the module under test; closed after the test, and
        unlinked unless another handle (CPython's) owns that."""
        shm = SharedMemory(name)
        self.addCleanup(self._drop if unlink else SharedMemory.close, shm)
        return shm

    def list_attach(self, name, unlink=True):
        sl = ShareableList(name=name)
        self.addCleanup(self._drop if unlink else SharedMemory.close, sl.shm)
        return sl


class WithCpythonBlocks(InteropCase):
    def test_package_block_in_cpython(self):
        shm = self.block(100, unique_name("tocp"))
        shm.buf[:5] = b"hello"
        theirs = self.cpython_attach(shm.name)
        self.assertEqual(theirs.size, 100)
        self.assertEqual(bytes(theirs.buf[:5]), b"hello")
        theirs.buf[95:100] = b"world"
        self.assertEqual(bytes(shm.buf[95:100]), b"world")

    def test_cpython_block_in_package(self):
        theirs = cpython.SharedMemory(unique_name("fromcp"), create=True, size=4096)
        self.track(theirs.name)
        self.addCleanup(self._drop, theirs)
        theirs.buf[:3] = b"abc"
        ours = self.attach(theirs.name, unlink=False)
        self.assertEqual(ours.size, 4096)
        self.assertEqual(bytes(ours.buf[:3]), b"abc")
        ours.buf[4095] = 9
        self.assertEqual(theirs.buf[4095], 9)

    def test_either_side_unlinks(self):
        theirs = cpython.SharedMemory(create=True, size=64)
        self.track(theirs.name)
        self.addCleanup(theirs.close)
        ours = SharedMemory(theirs.name)
        ours.unlink()
        ours.close()
        self.assertFalse(shm_exists(theirs.name))
        with self.assertRaises(FileNotFoundError):
            theirs.unlink()
        if not CPYTHON:  # CPython's failed unlink left the name in its tracker
            resource_tracker.unregister(theirs._name, "shared_memory")
        ours = self.block(64)
        theirs = cpython.SharedMemory(ours.name)
        theirs.unlink()
        theirs.close()
        with self.assertRaises(FileNotFoundError):
            ours.unlink()


@needs_list_layout
class WithCpythonLists(InteropCase):
    def check_same(self, a, b, values):
        self.assertEqual(len(a), len(values))
        for i, v in enumerate(values):
            self.assertTrue(same(a[i], v), (i, a[i], v))
            self.assertTrue(same(b[i], v), (i, b[i], v))
        self.assertEqual(a.format, b.format)
        self.assertEqual(repr(a), repr(b))

    def test_package_list_in_cpython(self):
        values = ASCII_VALUES + UNICODE_VALUES
        ours = self.slist(values, name=unique_name("ltocp"))
        theirs = self.cpython_list_attach(ours.shm.name)
        self.check_same(ours, theirs, values)
        theirs[0] = -7
        theirs[-1] = "本"
        theirs[1] = b"set"
        theirs[2] = None
        self.assertEqual((ours[0], ours[-1], ours[1], ours[2]), (-7, "本", b"set", None))
        self.assertEqual(ours.format, theirs.format)

    def test_cpython_list_in_package(self):
        values = ASCII_VALUES + UNICODE_VALUES
        theirs = self.cpython_list(values, name=unique_name("lfromcp"))
        ours = self.list_attach(theirs.shm.name, unlink=False)
        self.check_same(ours, theirs, values)
        ours[0] = -2**63
        ours[3] = 2.5
        ours[-2] = "é"
        ours[-1] = True
        self.assertEqual((theirs[0], theirs[3], theirs[-2], theirs[-1]), (-2**63, 2.5, "é", True))
        self.assertEqual(ours.count(-2**63), theirs.count(-2**63))
        self.assertEqual(ours.index(True), theirs.index(True))

    def test_ascii_lists_are_byte_identical(self):
        ours = self.slist(ASCII_VALUES)
        theirs = self.cpython_list(ASCII_VALUES)
        self.assertEqual(block_bytes(ours.shm.name), block_bytes(theirs.shm.name))
        empty_ours, empty_theirs = self.slist([]), self.cpython_list([])
        self.assertEqual(block_bytes(empty_ours.shm.name), block_bytes(empty_theirs.shm.name))

    @pshm_only
    def test_long_unicode_from_the_package_reads_in_cpython(self):
        values = ["ééééé", "€" * 8, "éàü€𝄞"]
        ours = self.slist(values)
        theirs = self.cpython_list_attach(ours.shm.name)
        self.assertEqual(list(theirs), values)
        theirs[0] = "é" * 8  # CPython checks bytes against the 16 allocated
        self.assertEqual(ours[0], "é" * 8)

    @pshm_only
    def test_raw_of_a_cpython_list(self):
        theirs = self.cpython_list([b"ab\x00", "x"])
        ours = self.list_attach(theirs.shm.name, unlink=False)
        self.assertEqual(ours[0], b"ab")
        self.assertEqual(ours.raw(0), b"ab" + bytes(6))


class WithTheCli(InteropCase):
    @module_list_layout
    def test_list_show_is_pythons_repr(self):
        values = ASCII_VALUES + UNICODE_VALUES + [b"\x7f\x80'\"", "\\", "\x01\x1f\x7f"]
        sl = self.slist(values)
        self.assertEqual(self.cli_ok("list", "show", sl.shm.name), repr(sl) + "\n")
        self.assertEqual(self.cli_ok("list", "format", sl.shm.name), sl.format + "\n")
        for i in (0, 3, len(values) - 1):
            self.assertEqual(self.cli_ok("list", "get", sl.shm.name, "--", str(i - len(values))),
                             repr(sl[i]) + "\n")

    @module_list_layout
    def test_cli_list_set_and_new(self):
        sl = self.slist([0, "abc", None])
        self.cli_ok("list", "set", sl.shm.name, "--", "-3", "-12")
        self.cli_ok("list", "set", sl.shm.name, "1", "'é'")
        self.cli_ok("list", "set", sl.shm.name, "2", "b'\\x00z'")
        self.assertEqual(list(sl), [-12, "é", b"\x00z"])
        name = self.track(unique_name("clinew"))
        self.cli_ok("list", "new", "--name", name, "42", "--", "-1.5", "'howdy'", "None", "True")
        ours = self.list_attach(name)
        self.assertEqual(list(ours), [42, -1.5, "howdy", None, True])
        ours[2] = "hi"
        self.assertEqual(self.cli_ok("list", "get", name, "2"), "'hi'\n")

    def test_cli_blocks(self):
        name = self.track(unique_name("clicreate"))
        self.assertEqual(self.cli_ok("create", "--name", name, "--size", "1K"), name + "\n")
        shm = self.attach(name)
        self.assertEqual(shm.size, 1024)
        self.cli_ok("write", name, "--offset", "8", input=b"howdy")
        self.assertEqual(bytes(shm.buf[8:13]), b"howdy")
        shm.buf[100:103] = b"xyz"
        self.assertEqual(self.cli_ok("read", name, "--offset", "100", "--length", "3"), "xyz")
        ours = self.block(16)
        ours.buf[:4] = b"abcd"
        self.assertEqual(self.cli_ok("read", ours.name, "--length", "4"), "abcd")
        self.cli_ok("write", ours.name, "--offset", "12", input=b"WXYZ")
        self.assertEqual(bytes(ours.buf[12:]), b"WXYZ")


class WithC(InteropCase):
    @module_list_layout
    def test_c_list_in_package(self):
        name = self.track(unique_name("fromc"))
        values = [1, -2**63, -0.5, "tab\t", b"\x00\xff", None, False, "éàü€𝄞"]
        tool("create", name, *map(repr, values))
        sl = self.list_attach(name)
        for i, v in enumerate(values):
            self.assertTrue(same(sl[i], v), (i, sl[i]))
        self.assertEqual(tool("repr", name), repr(sl))
        sl[0] = -5
        self.assertEqual(tool("get", name, 0), "-5")
        self.assertEqual(tool("add", name, 0, 10), "-5")
        self.assertEqual(sl[0], 5)

    @module_list_layout
    def test_package_list_in_c(self):
        values = ASCII_VALUES + UNICODE_VALUES
        sl = self.slist(values)
        self.assertEqual(tool("repr", sl.shm.name), repr(sl))
        self.assertEqual(tool("format", sl.shm.name), sl.format)
        self.assertEqual(tool("len", sl.shm.name), str(len(values)))
        self.assertEqual(tool("index", sl.shm.name, "None"), str(sl.index(None)))
        self.assertEqual(tool("count", sl.shm.name, "-1"), str(sl.count(-1)))
        tool("set", sl.shm.name, 1, "'from C'")
        self.assertEqual(sl[1], "from C")

    @pshm_only
    def test_raw_matches_c(self):
        sl = self.slist([b"a\x00", "é", 7, b"12345678"])
        for i in range(4):
            self.assertEqual(tool("raw", sl.shm.name, i), sl.raw(i).hex())

    @pshm_only
    def test_long_unicode_from_c(self):
        name = self.track(unique_name("unic"))
        tool("create", name, repr("éàü€𝄞"), repr("ü" * 9))
        sl = self.list_attach(name)
        self.assertEqual(list(sl), ["éàü€𝄞", "ü" * 9])
        sl[1] = sl[1]


if __name__ == "__main__":
    main()
