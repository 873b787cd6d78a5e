"""CPython's ShareableList on the figures bench/bench_list.c measures.

Prints "BENCH <figure> cpython <ns_per_op>" for list.get_int, list.set_int,
list.get_str, list.set_str (cycling over 512 items, as the C side does),
list.create_1000 (create a 1,000-int list, close, unlink) and list.sum_1000
(sum() of a 1,000-int list). PSHM_BENCH_SCALE multiplies the measuring time
(0.2 s per figure).
"""
from multiprocessing.shared_memory import ShareableList

import pybench  # bench/pybench.py: this script's folder is on sys.path

CYCLE = 512


def measure(figure, batch, ops_per_call=1):
    """Time batch(count) as pybench does; report ns per operation to 2
    decimals, as bench_list.c does."""
    pybench.report(figure, "cpython", pybench.measure_batch(batch, ops_per_call), 2)


def main():
    ints = ShareableList(range(1000))
    strs = ShareableList(["value 0"] * CYCLE)
    try:
        def create_1000(count):
            for _ in range(count):
                sl = ShareableList(range(1000))
                sl.shm.close()
                sl.shm.unlink()

        def sum_1000(count):
            for _ in range(count):
                sum(ints)

        # The per-item batches run CYCLE operations per round.
        for name, batch in pybench.item_batches(ints, strs, CYCLE).items():
            measure("list." + name, batch, CYCLE)
        measure("list.create_1000", create_1000)
        measure("list.sum_1000", sum_1000)
    finally:
        for sl in (ints, strs):
            sl.shm.close()
            sl.shm.unlink()


if __name__ == "__main__":
    main()
