"""The pshm Python package beside CPython's module, in one run of one Python.

Prints "BENCH python.<figure> <impl> <ns_per_op>" with impl "pshm" (the
package, from build/python: bench/run.sh puts it on PYTHONPATH) and
"cpython" (multiprocessing.shared_memory / SharedMemoryManager), for:
sl[i] and sl[i] = v on int and str items, SharedMemory(create=True,
size=4096) + close + unlink, attach + close, and a manager's block
create + close + release. PSHM_BENCH_SCALE multiplies the measuring time.

The block and manager figures are system calls and wake-ups of other
processes (trackers, servers), whose cost follows the state of the machine
(on a shared VM it changes by 2x within minutes): they are timed in
interleaved rounds, pshm and CPython back to back, and the ratio is taken
per round (pybench.measure_paired; "PAIRED" lines).
"""
import sys
from multiprocessing import shared_memory as cpython_sm
from multiprocessing.managers import SharedMemoryManager as CPythonManager, dispatch

import pybench  # bench/pybench.py: this script's folder is on sys.path

try:
    import pshm
except ImportError as e:
    sys.exit(f"py_package.py: the pshm package is not importable ({e}); "
             "run through bench/run.sh, which puts build/python on PYTHONPATH")

CYCLE = 512
DESCRIPTIONS = {
    "get_int": "sl[i] of an int item, cycling over 512 items (pshm: C item access).",
    "set_int": "sl[i] = v of an int item over an int item.",
    "get_str": "sl[i] of a str item.",
    "set_str": "sl[i] = v of a str item that fits its storage.",
    "block_create": "SharedMemory(create=True, size=4096), close(), unlink(): tracked "
                    "(pshm: its tracker; CPython: its resource tracker). pshm maps a "
                    "block at the first use of .buf, so this cycle has no mmap/munmap.",
    "block_create_touch": "As block_create, with shm.buf[0] = 1 before close(): the "
                          "mapping paid, as in most real uses.",
    "block_attach": "SharedMemory(name) of an existing 4096-byte block, then close() "
                    "(CPython 3.8-3.12 also register with their resource tracker; pshm "
                    "maps at the first use of .buf).",
    "block_attach_touch": "As block_attach, with shm.buf[0] read before close().",
    "manager_block": "smm.SharedMemory(4096), close, and the server unlinks it "
                     "(pshm: release(name); CPython: its server's release_segment, "
                     "as bench/py_manager.py does).",
}


def list_figures(impl, module):
    ints = module.ShareableList(range(CYCLE))
    strs = module.ShareableList(["value 0"] * CYCLE)
    try:
        for name, batch in pybench.item_batches(ints, strs, CYCLE).items():
            pybench.report("python." + name, impl, pybench.measure_batch(batch, CYCLE), 2)
    finally:
        for sl in (ints, strs):
            sl.shm.close()
            sl.shm.unlink()


def create_close_unlink(module):
    shm = module.SharedMemory(create=True, size=4096)
    shm.close()
    shm.unlink()


def create_touch_close_unlink(module):
    shm = module.SharedMemory(create=True, size=4096)
    shm.buf[0] = 1
    shm.close()
    shm.unlink()


def attach_touch_close(module, name):
    shm = module.SharedMemory(name)
    shm.buf[0]
    shm.close()


def block_figures():
    pybench.measure_paired("python.block_create",
                           {"pshm": lambda: create_close_unlink(pshm),
                            "cpython": lambda: create_close_unlink(cpython_sm)})
    pybench.measure_paired("python.block_create_touch",
                           {"pshm": lambda: create_touch_close_unlink(pshm),
                            "cpython": lambda: create_touch_close_unlink(cpython_sm)})
    held = {impl: module.SharedMemory(create=True, size=4096)
            for impl, module in (("pshm", pshm), ("cpython", cpython_sm))}
    try:
        pybench.measure_paired(
            "python.block_attach",
            {"pshm": lambda: pshm.SharedMemory(held["pshm"].name).close(),
             "cpython": lambda: cpython_sm.SharedMemory(held["cpython"].name).close()})
        pybench.measure_paired(
            "python.block_attach_touch",
            {"pshm": lambda: attach_touch_close(pshm, held["pshm"].name),
             "cpython": lambda: attach_touch_close(cpython_sm, held["cpython"].name)})
    finally:
        for shm in held.values():
            shm.close()
            shm.unlink()


def manager_figure():
    with pshm.SharedMemoryManager() as ours, CPythonManager() as theirs:
        def pshm_cycle():
            shm = ours.SharedMemory(4096)
            shm.close()
            ours.release(shm.name)

        def cpython_cycle():
            shm = theirs.SharedMemory(4096)
            shm.close()
            with theirs._Client(theirs._address, authkey=theirs._authkey) as conn:
                dispatch(conn, None, "release_segment", (shm.name,))

        pybench.measure_paired("python.manager_block",
                               {"pshm": pshm_cycle, "cpython": cpython_cycle})


def main():
    for figure, text in DESCRIPTIONS.items():
        print(f"DESC python.{figure} {text}")
    for impl, module in (("pshm", pshm), ("cpython", cpython_sm)):
        list_figures(impl, module)
    block_figures()
    manager_figure()


if __name__ == "__main__":
    main()
