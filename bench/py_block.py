"""py_block.py — CPython's SharedMemory life cycle, the reference for bench_block.c.

Figures (impl cpython), printed as "BENCH <figure> cpython <ns_per_op>":
  block.create_close_unlink  SharedMemory(create=True, size=4096), close, unlink
  block.attach_close         SharedMemory(name) of an existing block, close
                             (3.11 registers with its resource tracker on
                             attach too, so this pays a tracker message)

PSHM_BENCH_SCALE multiplies the measuring time (0.2 s per figure).
"""
import os
import time
from multiprocessing import shared_memory

SMALL_SIZE = 4096
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


def report(figure, ns):
    print(f"BENCH {figure} cpython {ns:.1f}", flush=True)


def create_close_unlink():
    shm = shared_memory.SharedMemory(create=True, size=SMALL_SIZE)
    shm.close()
    shm.unlink()


def main():
    report("block.create_close_unlink", measure(create_close_unlink))

    target = shared_memory.SharedMemory(create=True, size=SMALL_SIZE)
    try:
        def attach_close():
            shared_memory.SharedMemory(target.name).close()

        report("block.attach_close", measure(attach_close))
    finally:
        target.close()
        # Also unregisters the name every attach registered (one set entry).
        target.unlink()


if __name__ == "__main__":
    main()
