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
import os
import time
from multiprocessing.managers import SharedMemoryManager, dispatch

SIZE = 4096
MIN_MEASURE_NS = 200_000_000
CALIBRATE_NS = 20_000_000


def bench_scale():
    try:
        value = float(os.environ.get("PSHM_BENCH_SCALE", "1"))
    except ValueError:
        return 1.0
    return value if value > 0 else 1.0


def run_batch(op, count):
    start = time.perf_counter_ns()
    for _ in range(count):
        op()
    return time.perf_counter_ns() - start


def measure(op):
    """Warm up by doubling a batch until it lasts CALIBRATE_NS, then time
    one batch long enough for the measuring time; ns per op."""
    count = 1
    while run_batch(op, count) < CALIBRATE_NS:
        count *= 2
    per_op = CALIBRATE_NS / count
    n = int(MIN_MEASURE_NS * bench_scale() / per_op) + 1
    return run_batch(op, n) / n


def main():
    with SharedMemoryManager() as smm:
        def cycle():
            shm = smm.SharedMemory(SIZE)
            shm.close()
            with smm._Client(smm._address, authkey=smm._authkey) as conn:
                dispatch(conn, None, "release_segment", (shm.name,))

        ns = measure(cycle)
        with smm._Client(smm._address, authkey=smm._authkey) as conn:
            left = dispatch(conn, None, "list_segments")
        if left:
            raise SystemExit("py_manager: blocks left behind: %r" % (left,))
    print(f"BENCH manager.block_create cpython {ns:.1f}", flush=True)


if __name__ == "__main__":
    main()
