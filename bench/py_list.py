"""CPython's ShareableList on the figures bench/bench_list.c measures.

Prints "BENCH <figure> cpython <ns_per_op>" for list.get_int, list.set_int,
list.get_str, list.set_str (cycling over 512 items, as the C side does),
list.create_1000 (create a 1,000-int list, close, unlink) and list.sum_1000
(sum() of a 1,000-int list). PSHM_BENCH_SCALE multiplies the measuring time
(0.2 s per figure).
"""
import os
import time
from multiprocessing.shared_memory import ShareableList

MIN_MEASURE_NS = 200_000_000 * float(os.environ.get("PSHM_BENCH_SCALE", "1") or 1)
CALIBRATE_NS = 20_000_000
CYCLE = 512


def run_batch(batch, count):
    t0 = time.perf_counter_ns()
    batch(count)
    return time.perf_counter_ns() - t0


def measure(figure, batch, ops_per_call=1):
    """Double the count until a batch takes CALIBRATE_NS (warming up), then
    time one batch of the measuring time; report ns per operation."""
    count = 1
    while run_batch(batch, count) < CALIBRATE_NS:
        count *= 2
    n = int(MIN_MEASURE_NS * count / CALIBRATE_NS) + 1
    ns = run_batch(batch, n) / (n * ops_per_call)
    print("BENCH %s cpython %.2f" % (figure, ns), flush=True)


def main():
    ints = ShareableList(range(1000))
    strs = ShareableList(["value 0"] * CYCLE)
    try:
        def get_int(rounds):
            for _ in range(rounds):
                for i in range(CYCLE):
                    ints[i]

        def set_int(rounds):
            for _ in range(rounds):
                for i in range(CYCLE):
                    ints[i] = i

        def get_str(rounds):
            for _ in range(rounds):
                for i in range(CYCLE):
                    strs[i]

        def set_str(rounds):
            for _ in range(rounds):
                for i in range(CYCLE):
                    strs[i] = "value 1"

        def create_1000(count):
            for _ in range(count):
                sl = ShareableList(range(1000))
                sl.shm.close()
                sl.shm.unlink()

        def sum_1000(count):
            for _ in range(count):
                sum(ints)

        # The per-item batches run CYCLE operations per round.
        measure("list.get_int", get_int, CYCLE)
        measure("list.set_int", set_int, CYCLE)
        measure("list.get_str", get_str, CYCLE)
        measure("list.set_str", set_str, CYCLE)
        measure("list.create_1000", create_1000)
        measure("list.sum_1000", sum_1000)
    finally:
        for sl in (ints, strs):
            sl.shm.close()
            sl.shm.unlink()


if __name__ == "__main__":
    main()
