"""Blocks and lists of the package passed to other processes (every start
method, multiprocessing.Pool arguments, os.fork) and shared by threads."""
import multiprocessing
import os
import threading

from pkgtest import PkgCase, SharedMemory, ShareableList, main, shm_exists

METHODS = [m for m in ("fork", "forkserver", "spawn")
           if m in multiprocessing.get_all_start_methods()]


# Children's work: module-level functions, so spawn and forkserver can
# import them by name in the child.
def write_block(shm, offset, data):
    if isinstance(shm, str):
        shm = SharedMemory(shm)
    shm.buf[offset:offset + len(data)] = data
    shm.close()


def write_list(sl, index, value):
    if isinstance(sl, str):
        sl = ShareableList(name=sl)
    sl[index] = value
    sl.shm.close()


def pool_work(args):
    shm, sl, i = args
    shm.buf[i] = i + 1
    sl[i] = "w%d" % i
    result = (shm.name, sl.shm.name, len(sl))
    shm.close()
    sl.shm.close()
    return result


class StartMethods(PkgCase):
    def run_child(self, ctx, target, *args):
        proc = ctx.Process(target=target, args=args)
        proc.start()
        proc.join(30)
        self.assertEqual(proc.exitcode, 0)

    def test_objects_and_names_pass_to_children(self):
        for method in METHODS:
            with self.subTest(method=method):
                ctx = multiprocessing.get_context(method)
                shm = self.block(64)
                sl = self.slist([0, "", None, b"", 0.0])
                self.run_child(ctx, write_block, shm, 0, b"object")
                self.run_child(ctx, write_block, shm.name, 10, b"by name")
                self.run_child(ctx, write_list, sl, 0, -5)
                self.run_child(ctx, write_list, sl, -4, "é" + method[:4])
                self.run_child(ctx, write_list, sl.shm.name, 2, True)
                self.run_child(ctx, write_list, sl.shm.name, 3, b"bytes")
                self.assertEqual(bytes(shm.buf[:6]), b"object")
                self.assertEqual(bytes(shm.buf[10:17]), b"by name")
                self.assertEqual(list(sl), [-5, "é" + method[:4], True, b"bytes", 0.0])
                # The children are gone; the parent's handles and blocks are not.
                self.assertTrue(shm_exists(shm.name))
                self.assertTrue(shm_exists(sl.shm.name))

    def test_pool_arguments(self):
        for method in METHODS:
            with self.subTest(method=method):
                shm = self.block(8)
                sl = self.slist([""] * 8)
                with multiprocessing.get_context(method).Pool(2) as pool:
                    results = pool.map(pool_work, [(shm, sl, i) for i in range(8)])
                self.assertEqual(set(results), {(shm.name, sl.shm.name, 8)})
                self.assertEqual(bytes(shm.buf), bytes(range(1, 9)))
                self.assertEqual(list(sl), ["w%d" % i for i in range(8)])


class OsFork(PkgCase):
    def test_handles_stay_valid_in_parent_and_child(self):
        shm = self.block(16)
        sl = self.slist([0, "parent"])
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never return into the test runner
            code = 1
            try:
                os.close(r)
                shm.buf[0] = 7
                sl[0] = 8
                ok = sl[1] == "parent"
                sl[1] = "child"
                os.write(w, b"ok" if ok else b"no")
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            said = f.read()
        _, status = os.waitpid(pid, 0)
        self.assertTrue(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status)
        self.assertEqual(said, b"ok")
        self.assertEqual(shm.buf[0], 7)
        self.assertEqual(list(sl), [8, "child"])
        shm.buf[1] = 9  # the parent's handle still works after the child left
        again = SharedMemory(shm.name)
        self.addCleanup(again.close)
        self.assertEqual(again.buf[1], 9)


class Threads(PkgCase):
    N = 8

    def run_threads(self, work):
        errors = []

        def wrapped(i):
            try:
                work(i)
            except BaseException as e:  # reported by the main thread
                errors.append(e)
        threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(self.N)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertFalse(any(t.is_alive() for t in threads))
        self.assertEqual(errors, [])

    def test_one_block_handle(self):
        shm = self.block(self.N * 1000)

        def work(i):
            for _ in range(200):
                shm.buf[i * 1000:(i + 1) * 1000] = bytes([i]) * 1000
                assert bytes(shm.buf[i * 1000:(i + 1) * 1000]) == bytes([i]) * 1000
        self.run_threads(work)

    def test_one_list_handle(self):
        sl = self.slist([0] * self.N + ["xxxxxxxx"] * self.N)

        def work(i):
            for n in range(500):
                sl[i] = n
                sl[self.N + i] = "t%d" % (n % 100)
                assert sl[i] == n and sl[self.N + i] == "t%d" % (n % 100)
                assert len(sl) == 2 * self.N
        self.run_threads(work)
        self.assertEqual(list(sl)[:self.N], [499] * self.N)

    def test_threads_create_attach_and_unlink(self):
        def work(i):
            for _ in range(20):
                shm = SharedMemory(create=True, size=4096)
                try:
                    other = SharedMemory(shm.name)
                    other.buf[0] = i
                    assert shm.buf[0] == i
                    other.close()
                finally:
                    shm.unlink()
                    shm.close()
        self.run_threads(work)


if __name__ == "__main__":
    main()
