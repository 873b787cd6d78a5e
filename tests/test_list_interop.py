"""Shareable lists: pshm against CPython's multiprocessing.shared_memory.

Every test runs real python3 beside the list_tool helper (public API only):
what one side writes the other reads, reprs and formats agree, and for
ASCII contents the two implementations produce byte-identical blocks.

Blocks: lists Python creates are unlinked with shm.unlink(); lists the tool
creates are attached by Python, dropped from Python's resource tracker (it
would otherwise remove them or warn), and unlinked through the tool.
"""
import itertools
import os
import subprocess
import unittest
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import ShareableList

TOOL = os.environ["PSHM_HELPER_list_tool"]
_counter = itertools.count()

# ASCII values of every type (byte-identical layouts are expected for these).
ASCII_VALUES = [
    0, 1, -1, 2**63 - 1, -2**63, 0.1 + 0.2, 1 / 3, 5e-324, 1.7976931348623157e308,
    -0.0, float("inf"), float("-inf"), 1e300, True, False, None, "", "a", "x" * 7,
    "y" * 8, "tab\there\nquote'\"", b"", b"\x00\x01\xff", b"z" * 16, "nul\x00inside",
]


def fresh_name():
    return "pshmt_%d_%d_py" % (os.getpid(), next(_counter))


def tool(*args, ok=True):
    """Run list_tool; return its stdout without the final newline."""
    proc = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True,
                          timeout=120)
    if ok and proc.returncode != 0:
        raise AssertionError("list_tool %s failed: %s%s" % (args[:3], proc.stdout, proc.stderr))
    if not ok and proc.returncode != 1:
        raise AssertionError("list_tool %s: expected a failure, got %d: %s"
                             % (args[:3], proc.returncode, proc.stdout))
    return proc.stdout[:-1] if proc.stdout.endswith("\n") else proc.stdout


def attach_unowned(name):
    """Attach Python to a list the tool made, without Python's tracker."""
    sl = ShareableList(name=name)
    resource_tracker.unregister(sl.shm._name, "shared_memory")
    return sl


def block_bytes(name):
    """The whole block, read from /dev/shm: attaching a SharedMemory would
    register it with Python's tracker a second time."""
    with open(os.path.join("/dev/shm", name), "rb") as f:
        return f.read()


def same(a, b):
    """Equal as Python values, telling -0.0 from 0.0 and matching types."""
    return type(a) is type(b) and repr(a) == repr(b)


class Interop(unittest.TestCase):
    def setUp(self):
        self.cleanups = []

    def tearDown(self):
        for fn in reversed(self.cleanups):
            fn()

    def python_list(self, values):
        sl = ShareableList(values, name=fresh_name())
        self.addCleanup(sl.shm.unlink)
        self.addCleanup(sl.shm.close)
        return sl

    def tool_list(self, values):
        name = fresh_name()
        tool("create", name, *map(repr, values))
        self.addCleanup(tool, "unlink", name)
        sl = attach_unowned(name)
        self.addCleanup(sl.shm.close)
        return name, sl

    def assert_c_sees(self, name, sl):
        """The tool's repr, format, len and items equal Python's."""
        self.assertEqual(tool("repr", name), repr(sl))
        self.assertEqual(tool("format", name), sl.format)
        self.assertEqual(tool("len", name), str(len(sl)))
        for i, v in enumerate(sl):
            self.assertEqual(tool("get", name, i), repr(v), "item %d" % i)

    def test_python_creates_c_reads(self):
        sl = self.python_list(ASCII_VALUES + ["héllo", "üüü"])
        self.assert_c_sees(sl.shm.name, sl)

    def test_c_creates_python_reads(self):
        name, sl = self.tool_list(ASCII_VALUES)
        self.assertEqual(len(sl), len(ASCII_VALUES))
        for got, want in zip(sl, ASCII_VALUES):
            want = want.rstrip("\x00") if isinstance(want, str) else want
            self.assertTrue(same(got, want), "%r != %r" % (got, want))
        self.assert_c_sees(name, sl)

    def test_layouts_are_byte_identical(self):
        py = self.python_list(ASCII_VALUES)
        name, _ = self.tool_list(ASCII_VALUES)
        self.assertEqual(block_bytes(name), block_bytes(py.shm.name))

    def test_type_changes_match_byte_for_byte(self):
        start = [1, "sixteen bytes..", None, b"b", 2.5]
        py = self.python_list(start)
        name, _ = self.tool_list(start)
        steps = [(0, "abc"), (1, 7), (1, "x"), (1, b"sixteen bytes!!!"), (2, True),
                 (2, "8 chars!"), (3, None), (3, 1e-7), (4, "s"), (4, False),
                 (0, b"12345678"), (0, -5), (-1, ""), (-2, b"")]
        for index, value in steps:
            py[index] = value
            tool("set", name, index, repr(value))
            self.assertEqual(block_bytes(name), block_bytes(py.shm.name),
                             "after [%d] = %r" % (index, value))
            self.assertEqual(tool("format", name), py.format)

    def test_python_writes_c_list(self):
        name, sl = self.tool_list([0, "abcdefgh", None])
        for index, value in [(0, "text"), (1, 2**63 - 1), (2, b"\x00raw"), (-1, 0.1),
                             (1, "🐍 ok"), (0, None), (2, True)]:
            sl[index] = value
            self.assertEqual(tool("get", name, index), repr(sl[index]))
        self.assert_c_sees(name, sl)

    def test_c_writes_python_list(self):
        sl = self.python_list([0, "abcdefgh", None, 1.0])
        name = sl.shm.name
        for index, value in [(0, "text"), (1, -2**63), (2, b"\xffraw"), (-1, 123456789.125),
                             (1, "ünï"), (0, None), (2, False), (3, float("nan"))]:
            tool("set", name, index, repr(value))
            self.assertEqual(repr(sl[index]), repr(value))
        self.assertEqual(tool("repr", name), repr(sl))

    def test_storage_exceeded_is_refused_on_both_sides(self):
        sl = self.python_list(["dry ice", 5])
        out = tool("set", sl.shm.name, 0, repr("larger than before"), ok=False)
        self.assertIn("error ETOOBIG", out)
        self.assertIn('"%s"[0]: 18-byte str exceeds the 8 bytes allocated' % sl.shm.name, out)
        self.assertEqual(sl[0], "dry ice")
        self.assertIn("ETOOBIG", tool("set", sl.shm.name, 1, repr(b"123456789"), ok=False))
        self.assertEqual(sl[1], 5)
        name, csl = self.tool_list(["dry ice"])
        with self.assertRaises(ValueError):
            csl[0] = "larger than before"
        self.assertEqual(tool("get", name, 0), "'dry ice'")

    def test_multibyte_text_allocated_by_bytes(self):
        # CPython would give '€€€€€' (5 characters, 15 bytes) only 8 bytes.
        text = "€" * 5
        name, sl = self.tool_list([text, "日本語テキスト"])
        self.assertEqual(sl[0], text)
        self.assertEqual(sl.format, "16s24s")
        sl[0] = "€" * 4 + "x"
        self.assertEqual(tool("get", name, 0), repr("€" * 4 + "x"))
        self.assert_c_sees(name, sl)

    def test_int64_limits_and_float_digits(self):
        values = [2**63 - 1, -2**63, 0.1, 0.1 + 0.2, 2 / 3, 1e-310, 123456789012345680.0,
                  9007199254740993.0, -1.5e-300]
        name, sl = self.tool_list(values)
        self.assertEqual([repr(v) for v in sl], [repr(v) for v in values])
        self.assertEqual(tool("add", name, 0, 1), str(2**63 - 1))  # wraps
        self.assertEqual(sl[0], -2**63)
        self.assert_c_sees(name, sl)

    def test_nul_stripping_matches(self):
        values = ["?\x00", b"\x03\x02\x01\x00\x00\x00", "?\x00\x07"]
        sl = self.python_list(values)
        self.assert_c_sees(sl.shm.name, sl)
        self.assertEqual(tool("raw", sl.shm.name, 1), "0302010000000000")

    def test_count_and_index_agree(self):
        values = [1, 1.0, True, "1", b"1", None, 0, False, 2.5]
        sl = self.python_list(values)
        for probe in [1, True, 0, "1", b"1", None, 2.5, 3]:
            self.assertEqual(tool("count", sl.shm.name, repr(probe)), str(sl.count(probe)))
        self.assertEqual(tool("index", sl.shm.name, "None"), str(sl.index(None)))
        self.assertIn("ENOTFOUND", tool("index", sl.shm.name, "'zz'", ok=False))

    def test_empty_list_both_ways(self):
        sl = self.python_list([])
        self.assert_c_sees(sl.shm.name, sl)
        name, csl = self.tool_list([])
        self.assertEqual(len(csl), 0)
        self.assertEqual(repr(csl), "ShareableList([], name=%r)" % name)
        self.assertEqual(tool("repr", name), repr(csl))
        self.assertEqual(csl.shm.size, 16)
        self.assertIn("ERANGE", tool("get", name, 0, ok=False))

    def test_hundred_thousand_items(self):
        n = 100_000
        name = fresh_name()
        tool("range", name, n)
        self.addCleanup(tool, "unlink", name)
        sl = attach_unowned(name)
        self.addCleanup(sl.shm.close)
        self.assertEqual(sum(sl), n * (n - 1) // 2)
        self.assertEqual(tool("repr", name), repr(sl))
        values = [i if i % 3 else str(i) for i in range(n)]
        py = self.python_list(values)
        self.assertEqual(tool("repr", py.shm.name), repr(py))
        self.assertEqual(tool("format", py.shm.name), py.format)
        self.assertEqual(tool("sum", py.shm.name), str(sum(v for v in values if
                                                            isinstance(v, int))))


if __name__ == "__main__":
    unittest.main(verbosity=2)
