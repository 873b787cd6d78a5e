"""py_block.py — CPython's SharedMemory life cycle, the reference for bench_block.c.

Figures (impl cpython), printed as "BENCH <figure> cpython <ns_per_op>":
  block.create_close_unlink  SharedMemory(create=True, size=4096), close, unlink
  block.attach_close         SharedMemory(name) of an existing block, close
                             (3.11 registers with its resource tracker on
                             attach too, so this pays a tracker message)

PSHM_BENCH_SCALE multiplies the measuring time (0.2 s per figure).
"""
from multiprocessing import shared_memory

import pybench  # bench/pybench.py: this script's folder is on sys.path

SMALL_SIZE = 4096


def report(figure, ns):
    pybench.report(figure, "cpython", ns)


def create_close_unlink():
    shm = shared_memory.SharedMemory(create=True, size=SMALL_SIZE)
    shm.close()
    shm.unlink()


def main():
    report("block.create_close_unlink", pybench.measure_op(create_close_unlink))

    target = shared_memory.SharedMemory(create=True, size=SMALL_SIZE)
    try:
        def attach_close():
            shared_memory.SharedMemory(target.name).close()

        report("block.attach_close", pybench.measure_op(attach_close))
    finally:
        target.close()
        # Also unregisters the name every attach registered (one set entry).
        target.unlink()


if __name__ == "__main__":
    main()
