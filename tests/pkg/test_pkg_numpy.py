"""The reference's NumPy example (shared_memory.rst): one ndarray backed by a
block, seen from two Python processes ("two distinct Python shells").

Skipped, with the reason printed, when this interpreter cannot import numpy
(only Debian's /usr/bin/python3 may have it, from python3-numpy).
"""
import sys
import unittest

from pkgtest import PkgCase, SharedMemory, main, pshm_only

try:
    import numpy as np
except ImportError:
    np = None

REASON = "numpy not importable by %s" % sys.executable

SECOND_SHELL = """
import numpy as np
existing_shm = SharedMemory(name=sys.argv[1])
if os.environ.get("PSHM_TEST_MODULE") == "cpython" and sys.version_info < (3, 13):
    # CPython's early delete (gh-82300): without this its tracker removes
    # the block when this process exits. pshm's package needs no such line.
    from multiprocessing import resource_tracker
    resource_tracker.unregister(existing_shm._name, "shared_memory")
c = np.ndarray((6,), dtype=np.int64, buffer=existing_shm.buf)
print(c.tolist(), flush=True)
c[-1] = 888
print(c.tolist(), flush=True)
del c
existing_shm.close()
"""


@unittest.skipIf(np is None, REASON)
class NumpyExample(PkgCase):
    def test_reference_example(self):
        a = np.array([1, 1, 2, 3, 5, 8], dtype=np.int64)
        shm = SharedMemory(create=True, size=a.nbytes)
        self.track(shm.name)
        b = np.ndarray(a.shape, dtype=a.dtype, buffer=shm.buf)
        b[:] = a[:]
        self.assertEqual(b.tolist(), [1, 1, 2, 3, 5, 8])
        self.assertIs(type(b), np.ndarray)
        res = self.python_ok(SECOND_SHELL, shm.name)
        self.assertEqual(res.stdout, "[1, 1, 2, 3, 5, 8]\n[1, 1, 2, 3, 5, 888]\n")
        self.assertEqual(b.tolist(), [1, 1, 2, 3, 5, 888])
        del b
        shm.close()
        shm.unlink()

    @pshm_only
    def test_close_while_an_array_uses_the_buffer(self):
        # CPython raises nothing here: numpy (1.24) releases its buffer
        # export at once and keeps the mmap as the array's base, so CPython's
        # close() unmaps the memory under the array and reading the array
        # afterwards crashes. pshm refuses, as for any other live export.
        shm = self.block(8 * 4)
        arr = np.ndarray((4,), dtype=np.int64, buffer=shm.buf)
        arr[:] = [4, 3, 2, 1]
        with self.assertRaises(BufferError):
            shm.close()
        self.assertEqual(arr.tolist(), [4, 3, 2, 1])  # still mapped
        del arr
        shm.close()

    def test_array_over_an_attached_block(self):
        shm = self.block(8 * 1000)
        other = SharedMemory(shm.name)
        self.addCleanup(other.close)
        x = np.ndarray((1000,), dtype=np.float64, buffer=shm.buf)
        y = np.ndarray((1000,), dtype=np.float64, buffer=other.buf)
        x[:] = np.arange(1000) / 4
        self.assertEqual(float(y.sum()), float(np.arange(1000).sum() / 4))
        del x, y


if __name__ == "__main__":
    if np is None:
        print(REASON)
    main()
