"""Shared memory blocks and shareable lists on libpshm.

A drop-in for multiprocessing.shared_memory (CPython 3.13's API, on CPython
3.8 and later), with pshm's resource tracker instead of CPython's: every
handle, Python or C, holds a shared flock on its block, and a tracked block
is removed only once no process of any kind holds it, and never while one
does. Using this module starts no CPython resource-tracker process.

Deliberate differences from CPython (see python/README.md):
  - track=True (the default) asks pshm's tracker, not CPython's, to remove
    the block once every holder is gone; attaching never makes a block
    removable (CPython 3.8-3.12 register on attach and delete blocks other
    programs still use: gh-82300). Blocks made by CPython itself are never
    removed by pshm.
  - unlink() removes the block this handle opened, never a newer block that
    took its name.
  - ShareableList measures a str's storage in UTF-8 bytes (CPython counts
    characters, so it cannot store back some of its own values) and offers
    raw(i) for values that end in NUL bytes.
  - Additions: readonly= and populate= for SharedMemory; track= and
    readonly= for ShareableList.
"""

import os
import struct
import sys
import types
from functools import partial

from . import _pshm

__all__ = ['SharedMemory', 'ShareableList']

_USE_POSIX = True
_O_EXCL = os.O_EXCL
_O_CREX = os.O_CREAT | os.O_EXCL
_O_CREAT = os.O_CREAT
_O_CREX_RDWR = _O_CREX | os.O_RDWR
_Block = _pshm.Block
_getrefcount = sys.getrefcount
_SHM_SAFE_NAME_LENGTH = 14
_SHM_NAME_PREFIX = '/psm_'
_encoding = "utf8"


_NAME_RANDOM_BYTES = (_SHM_SAFE_NAME_LENGTH - len(_SHM_NAME_PREFIX)) // 2


# The random parts of the next names, drawn _NAMES_PER_DRAW at a time:
# os.urandom is a system call, a measurable part of a create. list.pop and
# list.extend are single steps under the GIL, so threads never share a name.
# A forked child empties its copy, so parent and child never make the same
# names.
_NAMES_PER_DRAW = 64
_name_pool = []


def _draw_names():
    "Refill the pool from one os.urandom (what secrets.token_hex reads)."
    digits = os.urandom(_NAME_RANDOM_BYTES * _NAMES_PER_DRAW).hex()
    step = 2 * _NAME_RANDOM_BYTES
    _name_pool.extend(digits[i:i + step] for i in range(0, len(digits), step))


os.register_at_fork(after_in_child=_name_pool.clear)


def _make_filename():
    "A fresh random name: '/psm_' and 8 hex digits, as CPython makes them."
    while True:
        try:
            return _SHM_NAME_PREFIX + _name_pool.pop()
        except IndexError:
            _draw_names()


def _create_with_fresh_name(make):
    "Call make(name) with fresh random names until one is not taken."
    while True:
        try:
            return make(_make_filename())
        except FileExistsError:
            continue


class SharedMemory:
    """Creates a new shared memory block or attaches to an existing one.

    SharedMemory(name=None, create=False, size=0, *, track=True,
                 readonly=False, populate=False)

    As in multiprocessing.shared_memory; track=True registers a created
    block with pshm's resource tracker, which removes it once no process
    holds it any more. readonly=True attaches read-only; populate=True
    reserves and pre-faults every page now (a write can then never fail
    for lack of space in /dev/shm)."""

    _name = None
    _block = None
    _size = 0
    _flags = os.O_RDWR
    _mode = 0o600
    _prepend_leading_slash = True
    _track = True

    # The Python around a create was 14,000 instructions of its 22,000 in
    # user space (callgrind; the system calls cost more): constants and C
    # calls are bound at module level and the common paths written out,
    # which saves about 4,700 per create+close+unlink.
    def __init__(self, name=None, create=False, size=0, *, track=True,
                 readonly=False, populate=False):
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        if create:
            flags = self._flags = _O_CREX_RDWR
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero")
        else:
            flags = self._flags
        if name is None and not flags & _O_EXCL:
            raise ValueError("'name' can only be None if create=True")
        if readonly and flags & _O_CREAT:
            raise ValueError("readonly=True is for attaching to an existing block")
        self._track = track
        if name is None:
            # _create_with_fresh_name, written out: the common create.
            while True:
                name = _make_filename()
                try:
                    block = _Block(name, True, size, track, False, populate)
                    break
                except FileExistsError:
                    continue
        elif flags & _O_EXCL:
            block = _Block(name, True, size, track, False, populate)
            name = '/' + block.name
        else:
            try:
                block = _Block(name, False, 0, track, readonly, populate)
            except FileNotFoundError:
                # A subclass may ask for O_CREAT without O_EXCL: create then.
                if not (flags & _O_CREAT and size > 0):
                    raise
                block = _Block(name, True, size, track, False, populate)
            name = '/' + block.name
        self._block = block
        self._name = self._opened_name = name
        self._size = block.size

    @classmethod
    def _wrap(cls, block, track=False):
        "A SharedMemory around a handle made elsewhere (lists, managers)."
        self = cls.__new__(cls)
        self._track = track
        self._adopt(block)
        return self

    def _adopt(self, block):
        self._block = block
        self._name = self._opened_name = '/' + block.name
        self._size = block.size

    # No __del__ (CPython's calls close()): a handle that is collected
    # drops its view and then its _pshm.Block, whose own deallocation
    # unmaps and closes, once nothing (a view, a numpy array) still uses
    # it; a list's block is the list's to close. A finalizer here cost
    # 1,900 instructions per create+close+unlink (callgrind).

    def __reduce__(self):
        return (self.__class__, (self.name, False, self.size))

    def __repr__(self):
        return f'{self.__class__.__name__}({self.name!r}, size={self.size})'

    @property
    def buf(self):
        "A memoryview of contents of the shared memory block."
        # Made at its first use, which maps the block: a handle whose bytes
        # this process never touches costs no mmap and munmap (a fifth of a
        # create+close+unlink). setdefault keeps a single view when two
        # threads get here at once; close() pops it.
        buf = self.__dict__.get('_buf')
        if buf is None:
            block = self._block
            if block is None or block.closed:
                return None
            view = memoryview(block)
            buf = self.__dict__.setdefault('_buf', view)
            if buf is not view:
                view.release()
        return buf

    @property
    def name(self):
        "Unique name that identifies the shared memory block."
        if self._name is not None and self._name.startswith('/'):
            return self._name[1:]
        return self._name

    @property
    def size(self):
        "Size in bytes."
        return self._size

    def close(self):
        """Closes access to the shared memory from this instance but does
        not destroy the shared memory block."""
        buf = self.__dict__.pop('_buf', None)
        if buf is not None:
            buf.release()
        block = self._block
        if block is not None:
            # Something still refers to the block itself, such as a numpy
            # array made on buf (numpy keeps the exporter, not the buffer):
            # unmapping would leave it pointing at nothing (CPython unmaps
            # under it, and the array's next access crashes the process).
            # Our own attribute, the local and getrefcount's argument are
            # the 3.
            if _getrefcount(block) > 3:
                raise BufferError("cannot close exported pointers exist")
            block.close()

    def unlink(self):
        """Requests that the underlying shared memory block be destroyed.

        Removes the block this handle opened (never a newer block that took
        its name since). Mappings stay valid until closed; pshm's tracker
        forgets the block."""
        name = self._name
        if not name:
            return
        if '\0' in name:
            raise ValueError("embedded null character")
        if self._block is not None and name == self._opened_name:
            self._block.unlink()
        else:
            _pshm.unlink(name)


class ShareableList(_pshm.List):
    """A fixed-length list of int, float, bool, str, bytes and None items
    stored in a shared memory block, in CPython's ShareableList layout.

    ShareableList(sequence=None, *, name=None, track=True, readonly=False)

    Item access (sl[i], sl[i] = v) runs in C. A str's storage is measured in
    UTF-8 bytes; raw(i) gives an item's allocated bytes, NULs included."""

    _types_mapping = {
        int: "q",
        float: "d",
        bool: "xxxxxxx?",
        str: "%ds",
        bytes: "%ds",
        None.__class__: "xxxxxx?x",
    }
    _alignment = 8

    def __init__(self, sequence=None, *, name=None, track=True, readonly=False):
        if name is None or sequence is not None:
            values = list(sequence or ())
            if name is None:
                _create_with_fresh_name(lambda n: self._create(values, n, track))
            else:
                self._create(values, name, track)
        else:
            self._attach(name, track, readonly)
        self._track = track

    @property
    def shm(self):
        """The SharedMemory the list lives in. A fresh view of the list's own
        block at each access (so no reference cycle delays the unmapping of a
        list nobody uses); closing it closes the list's block."""
        return SharedMemory._wrap(self._block(), self._track)

    def view(self, start=0, stop=None):
        """A memoryview of items [start, stop) in place, without a copy
        (a pshm addition): format 'q' (int64) if they are all int, 'd'
        (double) if all float, TypeError naming the first other item
        otherwise. numpy.asarray(sl.view()) is an array on the list, and
        writes through either keep the list readable by CPython.

        It shows the items' values as long as no process changes the type
        of one of them: view.obj.valid() tells whether that still holds
        (check it after reading). While a view lives, closing the list's
        block raises BufferError."""
        return memoryview(self._view(start, len(self) if stop is None else stop))

    def _get_packing_format(self, position):
        "Gets the packing format for a single value stored in the list."
        length = len(self)
        position = position if position >= 0 else position + length
        if position >= length or length < 0:
            raise IndexError("Requested position out of range.")
        buf = self.shm.buf
        data_size = struct.unpack_from("q", buf, 8 * (length + 1))[0]
        offset = (length + 2) * 8 + data_size + position * 8
        return bytes(buf[offset:offset + 8]).rstrip(b'\x00').decode(_encoding)

    def __reduce__(self):
        return partial(self.__class__, name=self.shm.name), ()

    def __repr__(self):
        return f'{self.__class__.__name__}({list(self)}, name={self.shm.name!r})'

    def count(self, value):
        "L.count(value) -> integer -- return number of occurrences of value."
        return sum(value == entry for entry in self)

    def index(self, value):
        """L.index(value) -> integer -- return first index of value.
        Raises ValueError if the value is not present."""
        for position, entry in enumerate(self):
            if value == entry:
                return position
        raise ValueError(f"{value!r} not in this container")

    __class_getitem__ = classmethod(types.GenericAlias) \
        if hasattr(types, "GenericAlias") else classmethod(lambda cls, item: cls)
