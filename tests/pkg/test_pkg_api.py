"""The pshm package's API, as CPython 3.13's multiprocessing.shared_memory
and SharedMemoryManager define it, plus pshm's documented additions.

PSHM_TEST_MODULE=cpython runs the same tests against CPython's own modules
(the @pshm_only ones are skipped), which checks what these tests expect.
"""
import gc
import multiprocessing
import os
import pickle
import sys
import tempfile
import unittest

from pkgtest import (CPYTHON, CPYTHON_LIST_LAYOUT_OK, PkgCase, SharedMemory,
                     SharedMemoryManager, ShareableList, flock_held, mappings_of, main, managers,
                     needs_track, pshm_only, shared_memory, shm_exists, unique_name)

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


def same(a, b):
    """Equal values of the same type, telling -0.0 from 0.0."""
    return type(a) is type(b) and repr(a) == repr(b)


class Modules(unittest.TestCase):
    @pshm_only
    def test_top_level_names_are_the_modules_classes(self):
        import pshm
        self.assertIs(pshm.SharedMemory, shared_memory.SharedMemory)
        self.assertIs(pshm.ShareableList, shared_memory.ShareableList)
        self.assertIs(pshm.SharedMemoryManager, managers.SharedMemoryManager)

    def test_private_names_cpythons_tests_use(self):
        self.assertIs(shared_memory._USE_POSIX, True)
        self.assertEqual(shared_memory._SHM_NAME_PREFIX, "/psm_")
        names = {shared_memory._make_filename() for _ in range(20)}
        self.assertEqual(len(names), 20)
        for name in names:
            self.assertTrue(name.startswith("/psm_"), name)
            self.assertLessEqual(len(name), 14)  # macOS's limit, kept by CPython

    @pshm_only
    def test_manager_docstring_names_its_protocol(self):
        doc = SharedMemoryManager.__doc__ or ""
        self.assertIn("protocol", doc)
        self.assertIn("pshm", doc)


class Blocks(PkgCase):
    def test_create_then_attach_by_name(self):
        name = unique_name("basic")
        shm = self.block(512, name)
        self.assertEqual(shm.name, name)
        self.assertEqual(shm._name, "/" + name)
        self.assertEqual(shm.size, 512)
        self.assertIsInstance(shm.buf, memoryview)
        self.assertEqual(len(shm.buf), 512)
        self.assertFalse(shm.buf.readonly)
        self.assertEqual(bytes(shm.buf), bytes(512))  # a new block is zero-filled
        shm.buf[0] = 42
        shm.buf[500:505] = b"howdy"
        other = SharedMemory(name)
        self.addCleanup(other.close)
        self.assertEqual(other.buf[0], 42)
        self.assertEqual(bytes(other.buf[500:505]), b"howdy")
        other.buf[1] = 7
        self.assertEqual(shm.buf[1], 7)

    def test_attach_ignores_size(self):
        shm = self.block(64)
        bigger = SharedMemory(shm.name, size=20 * shm.size)
        self.addCleanup(bigger.close)
        self.assertEqual(bigger.size, 64)
        smaller = SharedMemory(shm.name, create=False, size=1)
        self.addCleanup(smaller.close)
        self.assertEqual(smaller.size, 64)

    def test_generated_names(self):
        shm = self.block(16)
        self.assertTrue(shm.name.startswith("psm_"), shm.name)
        self.assertEqual(shm._name, "/" + shm.name)
        self.assertTrue(shm_exists(shm.name))
        self.assertNotEqual(shm.name, self.block(16).name)

    def test_forked_child_makes_other_names(self):
        # Names come from a pool of random bytes: a forked child must not
        # make the names its parent makes next.
        self.block(16)  # the pool has names left now
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.write(write_end, " ".join(self.names_made(4)).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            child = set(pipe.read().split())
        os.waitpid(pid, 0)
        self.assertEqual(len(child), 4)
        self.assertFalse(child & set(self.names_made(4)))

    @staticmethod
    def names_made(count):
        "The names of `count` new blocks, each removed again at once."
        names = []
        for _ in range(count):
            shm = SharedMemory(create=True, size=1)
            names.append(shm.name)
            shm.close()
            shm.unlink()
        return names

    def test_repr(self):
        shm = self.block(100, unique_name("repr"))
        self.assertEqual(repr(shm), "SharedMemory(%r, size=100)" % shm.name)

    def test_creation_mistakes_are_value_errors(self):
        cases = [
            (dict(create=True, size=-1), "'size' must be a positive integer"),
            (dict(create=True, size=-2), "'size' must be a positive integer"),
            (dict(create=True, size=0), "'size' must be a positive number different from zero"),
            (dict(create=True), "'size' must be a positive number different from zero"),
            (dict(), "'name' can only be None if create=True"),
            (dict(create=False, size=10), "'name' can only be None if create=True"),
        ]
        for kwargs, message in cases:
            with self.subTest(kwargs=kwargs):
                with self.assertRaises(ValueError) as cm:
                    SharedMemory(**kwargs)
                self.assertEqual(str(cm.exception), message)

    @unittest.skipIf(CPYTHON and sys.version_info < (3, 13),
                     "CPython < 3.13 cuts the name at the NUL")
    def test_name_with_nul_is_a_value_error(self):
        shm = self.block(16)
        for kwargs in (dict(), dict(create=True, size=16)):
            with self.subTest(kwargs=kwargs):
                with self.assertRaises(ValueError):
                    SharedMemory(shm.name + "\0a", **kwargs)
        orig = shm._name
        try:
            shm._name = orig + "\0a"   # unlink goes by _name, as CPython's
            with self.assertRaises(ValueError):
                shm.unlink()
        finally:
            shm._name = orig
        self.assertTrue(shm_exists(shm.name))

    def test_create_existing_name(self):
        shm = self.block(32, unique_name("dup"))
        with self.assertRaises(FileExistsError):
            SharedMemory(shm.name, create=True, size=32)
        self.assertEqual(SharedMemory(shm.name).size, 32)  # unchanged

    def test_attach_missing_name(self):
        name = unique_name("absent")
        with self.assertRaises(FileNotFoundError):
            SharedMemory(name)
        with self.assertRaises(FileNotFoundError):
            SharedMemory(name, create=False, size=10)
        self.assertFalse(shm_exists(name))

    def test_permission_denied(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to make a block another user cannot open")
        shm = self.block(16)
        os.chmod("/dev/shm/" + shm.name, 0o600)
        res = self.python_ok(
            "os.setgid(65534); os.setuid(65534)\n"
            "try:\n"
            "    SharedMemory(sys.argv[1])\n"
            "except PermissionError as e:\n"
            "    print('PermissionError')\n", shm.name)
        self.assertEqual(res.stdout, "PermissionError\n", res.stderr)

    def test_track_and_readonly_are_keyword_only(self):
        with self.assertRaises(TypeError):
            SharedMemory(None, True, 16, True)

    def test_close_is_idempotent(self):
        shm = self.block(16)
        other = SharedMemory(shm.name)
        other.close()
        self.assertIsNone(other.buf)
        other.close()
        self.assertIsNone(other.buf)
        self.assertTrue(shm_exists(shm.name))  # close never unlinks
        self.assertEqual(shm.buf[0], 0)

    def test_close_with_a_live_slice_is_a_buffer_error(self):
        shm = self.block(16)
        other = SharedMemory(shm.name)
        view = other.buf[2:6]
        with self.assertRaises(BufferError):
            other.close()
        view[0] = 9
        self.assertEqual(shm.buf[2], 9)  # the mapping stayed usable
        del view
        other.close()
        other.close()
        self.assertEqual(mappings_of(shm.name), 1)

    def test_close_with_an_export_is_a_buffer_error(self):
        shm = self.block(16)
        other = SharedMemory(shm.name)
        export = memoryview(other.buf)
        with self.assertRaises(BufferError):
            other.close()
        export.release()
        other.close()

    @pshm_only
    def test_close_while_something_holds_the_block_is_a_buffer_error(self):
        # What a numpy array made on buf does: it keeps the exporter (the
        # block), not a buffer. (test_pkg_numpy runs the real thing where
        # numpy can be imported.)
        shm = self.block(16)
        shm.buf  # mapped: pshm maps at the first use of buf
        other = SharedMemory(shm.name)
        other.buf
        holder = other._block
        with self.assertRaises(BufferError):
            other.close()
        del holder
        other.close()
        self.assertEqual(mappings_of(shm.name), 1)

    def test_close_unmaps(self):
        shm = self.block(16, unique_name("maps"))
        shm.buf[0] = 1
        self.assertEqual(mappings_of(shm.name), 1)
        other = SharedMemory(shm.name)
        self.assertEqual(other.buf[0], 1)
        self.assertEqual(mappings_of(shm.name), 2)
        other.close()
        self.assertEqual(mappings_of(shm.name), 1)

    @pshm_only
    def test_block_is_mapped_at_the_first_use_of_buf(self):
        shm = self.block(16, unique_name("lazy"))
        other = SharedMemory(shm.name)
        self.assertEqual(mappings_of(shm.name), 0)
        self.assertTrue(flock_held(shm.name), "an unmapped handle must hold its block")
        buf = other.buf
        self.assertIs(other.buf, buf)
        self.assertEqual(mappings_of(shm.name), 1)
        other.close()
        self.assertIsNone(other.buf)
        self.assertEqual(mappings_of(shm.name), 0)
        never = SharedMemory(shm.name)
        never.close()
        self.assertIsNone(never.buf)
        self.assertEqual(mappings_of(shm.name), 0)
        ro = SharedMemory(shm.name, readonly=True)
        self.addCleanup(ro.close)
        self.assertTrue(ro.buf.readonly)
        populated = SharedMemory(shm.name, populate=True)
        self.addCleanup(populated.close)
        self.assertEqual(mappings_of(shm.name), 2, "populate=True maps at once")

    @pshm_only
    def test_threads_first_using_buf_share_one_view(self):
        import threading
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads between any two bytecodes
        self.addCleanup(sys.setswitchinterval, interval)
        for _ in range(200):
            shm = SharedMemory(create=True, size=64)
            self.track(shm.name)
            start = threading.Barrier(8)
            seen = []

            def first_use():
                start.wait()
                seen.append(shm.buf)

            threads = [threading.Thread(target=first_use) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(len({id(b) for b in seen}), 1)
            del seen
            shm.close()  # a second view would be a BufferError here
            shm.unlink()

    def test_garbage_collection_unmaps_without_unlinking(self):
        shm = self.block(16, unique_name("gc"))
        shm.buf
        other = SharedMemory(shm.name)
        other.buf[0] = 5
        self.assertEqual(mappings_of(shm.name), 2)
        del other
        gc.collect()
        self.assertEqual(mappings_of(shm.name), 1)
        self.assertTrue(shm_exists(shm.name))
        again = SharedMemory(shm.name)
        self.addCleanup(again.close)
        self.assertEqual(again.buf[0], 5)

    def test_unlink_twice(self):
        shm = self.block(16)
        shm.unlink()
        self.assertFalse(shm_exists(shm.name))
        shm.buf[0] = 1  # still mapped until closed
        self.assertEqual(shm.buf[0], 1)
        with self.assertRaises(FileNotFoundError):
            shm.unlink()
        with self.assertRaises(FileNotFoundError):
            SharedMemory(shm.name)

    def test_unlink_through_another_handle(self):
        shm = self.block(16)
        other = SharedMemory(shm.name)
        other.unlink()
        other.close()
        with self.assertRaises(FileNotFoundError):
            shm.unlink()

    def test_pickling_reattaches_by_name(self):
        for proto in PROTOCOLS:
            with self.subTest(proto=proto):
                shm = self.block(512)
                shm.buf[0:6] = b"pickle"
                again = pickle.loads(pickle.dumps(shm, protocol=proto))
                self.addCleanup(again.close)
                self.assertIsInstance(again, SharedMemory)
                self.assertEqual(again.name, shm.name)
                self.assertEqual(again.size, shm.size)
                self.assertEqual(bytes(again.buf[0:6]), b"pickle")
                again.buf[0:6] = b"oldval"
                self.assertEqual(bytes(shm.buf[0:6]), b"oldval")

    def test_unpickling_a_dead_block(self):
        for proto in PROTOCOLS:
            with self.subTest(proto=proto):
                shm = SharedMemory(create=True, size=64)
                data = pickle.dumps(shm, protocol=proto)
                shm.close()
                shm.unlink()
                with self.assertRaises(FileNotFoundError):
                    pickle.loads(data)

    @needs_track
    def test_track_false_is_accepted(self):
        shm = self.block(16, track=False)
        other = SharedMemory(shm.name, track=False)
        other.buf[0] = 3
        other.close()
        self.assertEqual(shm.buf[0], 3)

    @pshm_only
    def test_readonly_attach(self):
        shm = self.block(16)
        shm.buf[0:3] = b"abc"
        ro = SharedMemory(shm.name, readonly=True)
        self.addCleanup(ro.close)
        self.assertTrue(ro.buf.readonly)
        self.assertEqual(bytes(ro.buf[0:3]), b"abc")
        with self.assertRaises(TypeError):
            ro.buf[0] = 1
        with self.assertRaises(TypeError):
            ro.buf[0:2] = b"zz"
        self.assertEqual(bytes(shm.buf[0:3]), b"abc")
        shm.buf[0] = ord("x")  # it sees later writes
        self.assertEqual(ro.buf[0], ord("x"))

    @pshm_only
    def test_populate(self):
        shm = self.block(1 << 20, populate=True)
        self.assertEqual(shm.size, 1 << 20)
        self.assertEqual(bytes(shm.buf[-16:]), bytes(16))
        other = SharedMemory(shm.name, populate=True)
        self.addCleanup(other.close)
        other.buf[-1] = 1
        self.assertEqual(shm.buf[-1], 1)


class Lists(PkgCase):
    VALUES = ["howdy", b"HoWdY", -273.154, 100, None, True, 42]

    def test_basics(self):
        sl = self.slist(self.VALUES)
        self.assertEqual(len(sl), 7)
        self.assertEqual(list(sl), self.VALUES)
        self.assertEqual(tuple(sl), tuple(self.VALUES))
        self.assertEqual(sl.format, "8s8sdqxxxxxx?xxxxxxxx?q")
        self.assertIsInstance(sl.shm, SharedMemory)
        for i, v in enumerate(self.VALUES):
            self.assertTrue(same(sl[i], v), (i, sl[i]))
            self.assertTrue(same(sl[i - 7], v), (i - 7, sl[i - 7]))

    def test_repr(self):
        name = unique_name("lrepr")
        sl = self.slist(self.VALUES, name=name)
        self.assertEqual(repr(sl), "ShareableList(%r, name=%r)" % (self.VALUES, name))
        self.assertEqual(str(sl), repr(sl))

    def test_assignment(self):
        sl = self.slist(self.VALUES)
        sl[3] = 42
        sl[-3] = "some"  # a new type at a position
        self.assertEqual(sl[4], "some")
        self.assertEqual(sl.format, "8s8sdq8sxxxxxxx?q")
        sl[-1] = -2**63
        sl[2] = float("-inf")
        sl[5] = None
        sl[0] = b"12345678"
        self.assertEqual(list(sl), [b"12345678", b"HoWdY", float("-inf"), 42, "some", None,
                                    -2**63])

    def check_out_of_range(self, indices):
        sl = self.slist([1, 2, 3])
        for index in indices:
            with self.subTest(index=index):
                with self.assertRaises(IndexError) as cm:
                    sl[index]
                self.assertEqual(str(cm.exception), "index out of range")
                with self.assertRaises(IndexError) as cm:
                    sl[index] = 0
                self.assertEqual(str(cm.exception), "assignment index out of range")
        self.assertEqual(list(sl), [1, 2, 3])

    def test_index_out_of_range(self):
        self.check_out_of_range([3, 4, 1000])

    @pshm_only  # CPython reads and writes past the list for these (its bug)
    def test_negative_index_out_of_range(self):
        self.check_out_of_range([-4, -5, -1000])

    def test_item_exceeding_its_storage(self):
        sl = self.slist(["some", b"HoWdY", 7])
        cases = [(0, "far too many"), (1, b"123456789"), (0, "encodées")]
        for index, value in cases:
            with self.subTest(value=value):
                with self.assertRaises(ValueError) as cm:
                    sl[index] = value
                self.assertEqual(str(cm.exception), "bytes/str item exceeds available storage")
        self.assertEqual(list(sl), ["some", b"HoWdY", 7])  # nothing changed, no spillage
        sl[0] = "encodés"  # exactly 8 bytes of UTF-8
        self.assertEqual(list(sl), ["encodés", b"HoWdY", 7])

    def test_values_round_trip(self):
        values = [0, 1, -1, 2**63 - 1, -2**63, 0.1 + 0.2, -0.0, 5e-324, float("inf"), True,
                  False, None, "", "x" * 8, "tab\tnl\n'\"", b"", b"\x01\xff", "éa", "€"]
        sl = self.slist(values)
        again = ShareableList(name=sl.shm.name)
        self.addCleanup(again.shm.close)
        for i, v in enumerate(values):
            self.assertTrue(same(sl[i], v), (i, sl[i], v))
            self.assertTrue(same(again[i], v), (i, again[i], v))

    def test_trailing_nuls_are_stripped(self):
        sl = self.slist([b"a\x00", b"\x00b\x00\x00", "nul\x00inside"])
        self.assertEqual(list(sl), [b"a", b"\x00b", "nul\x00inside"])

    def test_count_and_index(self):
        sl = self.slist([42, "a", 42, b"a", None, 42.0])
        self.assertEqual(sl.count(42), 3)  # 42.0 == 42
        self.assertEqual(sl.count("a"), 1)
        self.assertEqual(sl.count("zz"), 0)
        self.assertEqual(sl.index(42), 0)
        self.assertEqual(sl.index(None), 4)
        self.assertEqual(sl.index(b"a"), 3)
        for missing in ("100", b"zz", 7):
            with self.subTest(missing=missing):
                with self.assertRaises(ValueError) as cm:
                    sl.index(missing)
                self.assertEqual(str(cm.exception), "%r not in this container" % (missing,))

    def test_unsupported_items(self):
        import struct
        with self.assertRaises(KeyError):
            ShareableList([1, object()])
        sl = self.slist([1, "a"])
        with self.assertRaises(KeyError):
            sl[0] = [1]
        with self.assertRaises(struct.error):
            sl[0] = 2**63  # outside 64 bits
        self.assertEqual(sl[1], "a")

    def test_empty_list(self):
        sl = self.slist([])
        self.assertEqual(len(sl), 0)
        self.assertEqual(sl.format, "")
        self.assertEqual(list(sl), [])
        self.assertEqual(sl.count("any"), 0)
        with self.assertRaises(ValueError):
            sl.index(None)
        with self.assertRaises(IndexError):
            sl[0]

    @unittest.skipIf(CPYTHON and sys.version_info < (3, 9),
                     "CPython 3.8 cannot create a list without a sequence and a name")
    def test_no_arguments_makes_an_empty_list(self):
        sl = ShareableList()
        self.track(sl.shm.name)
        self.addCleanup(self._drop, sl.shm)
        self.assertEqual(len(sl), 0)

    def test_attach_by_name_and_copy(self):
        sl = self.slist(self.VALUES, name=unique_name("orig"))
        tethered = ShareableList(name=sl.shm.name)
        self.addCleanup(tethered.shm.close)
        tethered[-1] = 880
        self.assertEqual(sl[-1], 880)
        copy_name = unique_name("copy")
        copy = self.slist(sl, name=copy_name)
        self.assertEqual(copy.shm.name, copy_name)
        self.assertEqual(list(copy), list(sl))
        self.assertEqual(copy.format, sl.format)
        copy[-1] = 77
        self.assertEqual(sl[-1], 880)

    def test_name_taken_and_missing(self):
        sl = self.slist([1], name=unique_name("taken"))
        with self.assertRaises(FileExistsError):
            ShareableList([2], name=sl.shm.name)
        self.assertEqual(list(sl), [1])
        with self.assertRaises(FileNotFoundError):
            ShareableList(name=unique_name("nolist"))

    def test_pickling(self):
        for proto in PROTOCOLS:
            with self.subTest(proto=proto):
                sl = self.slist(range(10))
                again = pickle.loads(pickle.dumps(sl, protocol=proto))
                self.addCleanup(again.shm.close)
                self.assertIsInstance(again, ShareableList)
                self.assertIsNot(again, sl)
                self.assertEqual(again[-1], 9)
                again[4] = "changed"
                self.assertEqual(sl[4], "changed")
                larger = self.slist(range(400))
                self.assertEqual(len(pickle.dumps(sl, protocol=proto)),
                                 len(pickle.dumps(larger, protocol=proto)))

    def test_unpickling_a_dead_list(self):
        sl = ShareableList(range(3))
        data = pickle.dumps(sl)
        sl.shm.close()
        sl.shm.unlink()
        with self.assertRaises(FileNotFoundError):
            pickle.loads(data)

    @unittest.skipIf(sys.version_info < (3, 9), "generic aliases came in 3.9")
    def test_class_getitem(self):
        self.assertEqual(ShareableList[int].__origin__, ShareableList)

    @pshm_only  # CPython sizes a str by characters and loses multi-byte text
    def test_multibyte_str_is_measured_in_bytes(self):
        text = "ééééé"  # 5 characters, 10 bytes of UTF-8
        sl = self.slist([text, "€" * 8, "éàü€𝄞"])
        self.assertEqual(list(sl), [text, "€" * 8, "éàü€𝄞"])
        sl[0] = sl[0]
        sl[1] = "é" * 12  # 24 bytes fit the 24 allocated to 8 euro signs
        self.assertEqual(list(sl), [text, "é" * 12, "éàü€𝄞"])
        with self.assertRaises(ValueError):
            sl[0] = "é" * 9  # 18 bytes; 10 bytes got 8 * (10 // 8 + 1) = 16
        self.assertEqual(sl[0], text)

    @pshm_only
    def test_raw_keeps_trailing_nuls(self):
        sl = self.slist([b"a\x00", "ab", b"12345678", 5])
        self.assertEqual(sl[0], b"a")
        self.assertEqual(sl.raw(0), b"a" + bytes(7))
        self.assertEqual(sl.raw(-4), b"a" + bytes(7))
        self.assertEqual(sl.raw(1), b"ab" + bytes(6))
        self.assertEqual(sl.raw(2), b"12345678" + bytes(8))
        with self.assertRaises(IndexError):
            sl.raw(4)

    @pshm_only
    def test_readonly_list(self):
        sl = self.slist([1, "a"])
        ro = ShareableList(name=sl.shm.name, readonly=True)
        self.addCleanup(ro.shm.close)
        self.assertEqual(list(ro), [1, "a"])
        with self.assertRaises((TypeError, PermissionError)):
            ro[0] = 2
        self.assertEqual(list(sl), [1, "a"])

    @pshm_only  # CPython's ShareableList has no track=
    def test_track_false_list(self):
        sl = self.slist([1, 2], track=False)
        other = ShareableList(name=sl.shm.name, track=False)
        self.addCleanup(other.shm.close)
        other[0] = 9
        self.assertEqual(sl[0], 9)


class Manager(PkgCase):
    def test_not_started(self):
        smm = SharedMemoryManager()
        with self.assertRaises(ValueError):
            smm.SharedMemory(size=9)
        with self.assertRaises(ValueError):
            smm.ShareableList([1])

    def test_start_make_shutdown(self):
        smm = SharedMemoryManager()
        smm.start()
        try:
            lists = [smm.ShareableList(range(i)) for i in range(5, 8)]
            blocks = [smm.SharedMemory(size=j) for j in range(32, 128, 32)]
            for sl in lists:
                self.track(sl.shm.name)
            for shm in blocks:
                self.track(shm.name)
            self.assertIsInstance(lists[0], ShareableList)
            self.assertIsInstance(blocks[0], SharedMemory)
            self.assertEqual(list(lists[0]), [0, 1, 2, 3, 4])
            self.assertGreaterEqual(blocks[0].size, 32)
            twin = ShareableList(name=lists[0].shm.name)
            twin[0] = "x"
            self.assertEqual(lists[0][0], "x")
            twin.shm.close()
            names = [sl.shm.name for sl in lists] + [shm.name for shm in blocks]
        finally:
            smm.shutdown()
        for name in names:
            with self.subTest(name=name):
                self.assertFalse(shm_exists(name))
                with self.assertRaises(FileNotFoundError):
                    SharedMemory(name)

    def test_with_block(self):
        with SharedMemoryManager() as smm:
            sl = smm.ShareableList("howdy")
            shm = smm.SharedMemory(size=128)
            names = [self.track(sl.shm.name), self.track(shm.name)]
            self.assertEqual(list(sl), list("howdy"))
        for name in names:
            self.assertFalse(shm_exists(name))
        with self.assertRaises(FileNotFoundError):
            ShareableList(name=names[0])

    def test_connect_to_a_running_manager(self):
        first = SharedMemoryManager()
        first.start()
        try:
            key = (bytes(multiprocessing.current_process().authkey)
                   if CPYTHON else first.authkey)
            second = SharedMemoryManager(address=first.address, authkey=key)
            second.connect()
            shm = second.SharedMemory(size=64)
            sl = second.ShareableList([1, "two"])
            names = [self.track(shm.name), self.track(sl.shm.name)]
            self.assertEqual(list(sl), [1, "two"])
        finally:
            first.shutdown()
        for name in names:
            self.assertFalse(shm_exists(name))

    @pshm_only
    def test_addresses_and_keys(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.sock")
            cases = [(None, "unix:"), ("unix:" + path, "unix:" + path), (path, "unix:" + path),
                     (("127.0.0.1", 0), "tcp:127.0.0.1:"), (("::1", 0), "tcp:[::1]:"),
                     ("tcp:127.0.0.1:0", "tcp:127.0.0.1:")]
            for address, prefix in cases:
                with self.subTest(address=address):
                    with SharedMemoryManager(address=address, authkey=b"k3y") as smm:
                        self.assertTrue(smm.address.startswith(prefix), smm.address)
                        if prefix.startswith("tcp"):
                            self.assertGreater(int(smm.address.rsplit(":", 1)[1]), 0)
                        self.assertEqual(smm.authkey, b"k3y")
                        self.track(smm.SharedMemory(size=8).name)
        with SharedMemoryManager() as smm:  # no key given: a random one, once started
            self.assertIsInstance(smm.authkey, bytes)
            self.assertGreaterEqual(len(smm.authkey), 16)

    def connect_second(self, address):
        "A second manager connected to the first one's server at address."
        second = SharedMemoryManager(address=address, authkey=b"k3y")
        second.connect()
        self.track(second.SharedMemory(size=64).name)
        return second

    def test_cpythons_address_forms_start_and_connect(self):
        with SharedMemoryManager(address=("127.0.0.1", 0), authkey=b"k3y") as smm:
            address = smm.address  # CPython: the tuple; pshm: "tcp:127.0.0.1:PORT"
            port = address[1] if isinstance(address, tuple) else int(address.rsplit(":", 1)[1])
            self.assertGreater(port, 0)
            self.connect_second(("127.0.0.1", port))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.sock")
            with SharedMemoryManager(address=path, authkey=b"k3y"):
                self.connect_second(path)

    @pshm_only  # CPython's server process fails on it; its start() raises EOFError
    def test_an_address_of_another_type_is_a_value_error_at_start(self):
        for address in (b"/tmp/m.sock", 5, ("127.0.0.1",)):
            with self.subTest(address=address):
                smm = SharedMemoryManager(address=address, authkey=b"k3y")
                with self.assertRaises(ValueError):
                    smm.start()

    @pshm_only
    def test_connect_with_a_wrong_key_fails(self):
        with SharedMemoryManager(authkey=b"right") as smm:
            other = SharedMemoryManager(address=smm.address, authkey=b"wrong")
            with self.assertRaises(multiprocessing.AuthenticationError):
                other.connect()
                other.SharedMemory(size=8)

    @pshm_only
    def test_connect_to_a_cli_server(self):
        import subprocess
        from pkgtest import PSHM, need_cli, read_line
        need_cli()
        with tempfile.TemporaryDirectory() as tmp:
            keyfile = os.path.join(tmp, "key")
            with open(keyfile, "wb") as f:
                f.write(b"cli-key")
            server = self.keep(subprocess.Popen(
                [PSHM, "manager", "serve", "--address", "unix:" + os.path.join(tmp, "s"),
                 "--authkey-file", keyfile], stdout=subprocess.PIPE, text=True))
            address = read_line(server)
            smm = SharedMemoryManager(address=address, authkey=b"cli-key")
            smm.connect()
            self.assertEqual(smm.address, address)
            shm = smm.SharedMemory(size=100)
            sl = smm.ShareableList([1, None])
            names = [self.track(shm.name), self.track(sl.shm.name)]
            listed = self.cli_ok("manager", "--address", address, "--authkey-file", keyfile,
                                 "ls").split()
            self.assertEqual(sorted(listed), sorted(names))
            self.cli_ok("manager", "--address", address, "--authkey-file", keyfile, "shutdown")
            self.assertEqual(server.wait(timeout=15), 0)
            for name in names:
                self.assertFalse(shm_exists(name))


class NoCpythonTracker(PkgCase):
    @pshm_only
    def test_package_starts_no_resource_tracker_and_it_prints_nothing(self):
        res = self.python_ok(
            "import multiprocessing.resource_tracker as rt\n"
            "shm = SharedMemory(create=True, size=64)\n"
            "again = SharedMemory(shm.name)\n"
            "again.close()\n"
            "sl = ShareableList([1, 'a'])\n"
            "sl2 = ShareableList(name=sl.shm.name)\n"
            "sl2.shm.close()\n"
            "with SharedMemoryManager() as smm:\n"
            "    smm.SharedMemory(size=8); smm.ShareableList([1])\n"
            "kept = SharedMemory(create=True, size=8)  # left for pshm's tracker\n"
            "print(kept.name)\n"
            "shm.close(); shm.unlink(); sl.shm.close(); sl.shm.unlink()\n"
            "print(rt._resource_tracker._pid)\n")
        kept, pid = res.stdout.split()
        self.track(kept)
        self.assertEqual(pid, "None")
        self.assertNotIn("resource_tracker", res.stderr)
        self.assertNotIn("Warning", res.stderr)


if __name__ == "__main__":
    main()
