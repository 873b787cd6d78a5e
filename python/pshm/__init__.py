"""pshm: shared memory blocks, shareable lists and a manager server, on
libpshm — a drop-in for CPython's multiprocessing.shared_memory and
SharedMemoryManager whose resource tracker never removes a block while any
process (Python, C or the pshm CLI) still holds it, and leaks nothing after
SIGKILL.

    from pshm import SharedMemory, ShareableList, SharedMemoryManager

See pshm.shared_memory for the deliberate differences from CPython.
"""
from ._pshm import __version__
from .shared_memory import SharedMemory, ShareableList
from .managers import SharedMemoryManager

__all__ = ['SharedMemory', 'ShareableList', 'SharedMemoryManager']
