"""The pshm Python package beside CPython's module, in one run of one Python.

Prints "BENCH python.<figure> <impl> <ns_per_op>" with impl "pshm" (the
package, from build/python: bench/run.sh puts it on PYTHONPATH) and
"cpython" (multiprocessing.shared_memory / SharedMemoryManager), for:
sl[i] and sl[i] = v on int and str items, SharedMemory(create=True,
size=4096) + close + unlink, attach + close, and a manager's block
create + close + release. PSHM_BENCH_SCALE multiplies the measuring time.
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
                    "(pshm: its tracker; CPython: its resource tracker).",
    "block_attach": "SharedMemory(name) of an existing 4096-byte block, then close() "
                    "(CPython 3.8-3.12 also register with their resource tracker).",
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


def block_figures(impl, module):
    def create():
        shm = module.SharedMemory(create=True, size=4096)
        shm.close()
        shm.unlink()

    pybench.report("python.block_create", impl, pybench.measure_op(create))
    held = module.SharedMemory(create=True, size=4096)
    try:
        def attach():
            module.SharedMemory(held.name).close()
        pybench.report("python.block_attach", impl, pybench.measure_op(attach))
    finally:
        held.close()
        held.unlink()


def manager_figure(impl, manager_class):
    with manager_class() as smm:
        if impl == "pshm":
            def op():
                shm = smm.SharedMemory(4096)
                shm.close()
                smm.release(shm.name)
        else:
            def op():
                shm = smm.SharedMemory(4096)
                shm.close()
                with smm._Client(smm._address, authkey=smm._authkey) as conn:
                    dispatch(conn, None, "release_segment", (shm.name,))
        pybench.report("python.manager_block", impl, pybench.measure_op(op))


def main():
    for figure, text in DESCRIPTIONS.items():
        print(f"DESC python.{figure} {text}")
    for impl, module, manager in (("pshm", pshm, pshm.SharedMemoryManager),
                                  ("cpython", cpython_sm, CPythonManager)):
        list_figures(impl, module)
        block_figures(impl, module)
        manager_figure(impl, manager)


if __name__ == "__main__":
    main()
