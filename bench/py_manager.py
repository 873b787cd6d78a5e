"""py_manager.py — CPython's SharedMemoryManager, the reference for bench_manager.c.

Figure (impl cpython), printed as "BENCH manager.block_create cpython <ns_per_op>":
  manager.block_create  one block of 4096 bytes owned by a running manager,
                        through its whole life as a client sees it:
                          smm.SharedMemory(4096)   (CPython: the client creates the
                                                    block, then a new authenticated
                                                    connection asks the server to
                                                    track it)
                          shm.close()
                          release_segment(name)    (the server unlinks it; the same
                                                    private call the manager's own
                                                    shutdown path uses, over a new
                                                    connection as CPython does)
                        (The server is forked from this process and shares its
                        resource tracker, so the server's unlink also unregisters
                        the block the client registered.)
bench_manager.c measures the same cycle with pshm: create (the server makes
the block, the client attaches), close, release.

PSHM_BENCH_SCALE multiplies the measuring time (0.2 s per figure).
"""
from multiprocessing.managers import SharedMemoryManager, dispatch

import pybench  # bench/pybench.py: this script's folder is on sys.path

SIZE = 4096


def main():
    with SharedMemoryManager() as smm:
        def cycle():
            shm = smm.SharedMemory(SIZE)
            shm.close()
            with smm._Client(smm._address, authkey=smm._authkey) as conn:
                dispatch(conn, None, "release_segment", (shm.name,))

        ns = pybench.measure_op(cycle)
        with smm._Client(smm._address, authkey=smm._authkey) as conn:
            left = dispatch(conn, None, "list_segments")
        if left:
            raise SystemExit("py_manager: blocks left behind: %r" % (left,))
    pybench.report("manager.block_create", "cpython", ns)


if __name__ == "__main__":
    main()
