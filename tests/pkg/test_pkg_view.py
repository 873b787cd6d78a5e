"""ShareableList.view(): the int64 or double items of a list as a
memoryview in place (a pshm addition, issue 14), and numpy arrays on it.
pshm-only: CPython's module has no view."""
import struct
import sys
import unittest

from pkgtest import CPYTHON, CPYTHON_LIST_LAYOUT_OK, PkgCase, main, need_cli, cli

try:
    import numpy as np
except ImportError:
    np = None


@unittest.skipIf(CPYTHON, "view() is a pshm addition")
class View(PkgCase):
    def test_ints_in_place(self):
        sl = self.slist(list(range(-3, 7)))
        v = sl.view()
        self.assertEqual((v.format, v.itemsize, len(v)), ("q", 8, 10))
        self.assertEqual(v.tolist(), list(range(-3, 7)))
        v[0] = 1000  # writes reach the list, and the other way round
        sl[9] = -5
        self.assertEqual((sl[0], v[9]), (1000, -5))
        self.assertTrue(v.obj.valid())
        del v

    def test_floats_and_a_range(self):
        sl = self.slist(["head", 0.5, 1.5, 2.5, None])
        v = sl.view(1, 4)
        self.assertEqual((v.format, v.tolist()), ("d", [0.5, 1.5, 2.5]))
        self.assertEqual(sl.view(2, 2).tolist(), [])
        del v

    def test_mixed_items_are_refused_naming_the_index(self):
        sl = self.slist([1, 2, 3.0, 4])
        with self.assertRaises(TypeError) as cm:
            sl.view()
        self.assertIn("2", str(cm.exception))
        for bad in ((-1, 2), (2, 1), (0, 5)):
            with self.assertRaises(IndexError):
                sl.view(*bad)

    def test_type_change_by_another_process_is_seen(self):
        need_cli()
        sl = self.slist([1, 2, 3, 4])
        v = sl.view()
        self.assertTrue(v.obj.valid())
        res = cli("list", "set", sl.shm.name, "2", "'str!'")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertFalse(v.obj.valid())
        self.assertEqual(sl[2], "str!")
        del v

    @unittest.skipUnless(CPYTHON_LIST_LAYOUT_OK, "CPython 3.8's list layout differs")
    def test_writes_through_a_view_read_back_by_cpython(self):
        sl = self.slist([0] * 5)
        v = sl.view()
        v[:] = memoryview(struct.pack("5q", 7, -7, 2**62, -(2**63), 0)).cast("q")
        res = self.python_ok(
            "from multiprocessing import shared_memory, resource_tracker\n"
            "sl = shared_memory.ShareableList(name=sys.argv[1])\n"
            "if sys.version_info < (3, 13):\n"
            "    resource_tracker.unregister(sl.shm._name, 'shared_memory')\n"
            "print(list(sl), sl.format)\n"
            "sl.shm.close()\n", sl.shm.name)
        self.assertEqual(res.stdout.strip(), "[7, -7, %d, %d, 0] qqqqq" % (2**62, -(2**63)))
        del v

    def test_closing_the_block_refuses_while_a_view_lives(self):
        sl = self.slist([1, 2])
        v = sl.view()
        with self.assertRaises(BufferError):
            sl.shm.close()
        self.assertEqual(v.tolist(), [1, 2])  # still mapped
        del v
        sl.shm.close()
        with self.assertRaises(ValueError):
            sl[0]

    def test_read_only_list_gives_a_read_only_view(self):
        sl = self.slist([1, 2])
        ro = type(sl)(name=sl.shm.name, readonly=True)
        v = ro.view()
        self.assertTrue(v.readonly)
        with self.assertRaises(TypeError):
            v[0] = 5
        del v

    @unittest.skipIf(np is None, "numpy not importable by %s" % sys.executable)
    def test_numpy_array_on_a_list(self):
        sl = self.slist([float(i) for i in range(100)])
        a = np.asarray(sl.view())
        self.assertEqual(a.dtype, np.float64)
        self.assertEqual(float(a.sum()), 4950.0)
        a *= 2
        self.assertEqual(sl[99], 198.0)
        with self.assertRaises(BufferError):
            sl.shm.close()  # the array still uses the block
        del a


if __name__ == "__main__":
    main()
