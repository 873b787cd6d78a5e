"""SharedMemoryManager on pshm's manager server."""

from . import _pshm
from .shared_memory import SharedMemory, ShareableList

__all__ = ['SharedMemoryManager']


def _address_text(address):
    """pshm's address form for what CPython's managers accept: a (host, port)
    tuple (TCP), a str path (a Unix socket), or pshm's own "unix:PATH" and
    "tcp:HOST:PORT"; ValueError for anything else, as CPython raises."""
    if address is None:
        return None
    if isinstance(address, tuple) and len(address) == 2:
        host, port = address
        return f"tcp:[{host}]:{port}" if ":" in str(host) else f"tcp:{host}:{port}"
    if not isinstance(address, str):
        raise ValueError(f"address type of {address!r} unrecognized")
    if address.startswith(("unix:", "tcp:")):
        return address
    return "unix:" + address


class SharedMemoryManager:
    """A server process that owns shared memory blocks for a group of
    processes, and unlinks them all at shutdown.

    SharedMemoryManager(address=None, authkey=None)

    Unlike CPython's, this manager speaks pshm's manager protocol (an
    HMAC-SHA256 handshake, then fixed binary requests), not CPython's
    pickle protocol: it serves pshm clients in any language (C programs,
    the `pshm manager` CLI, this package) and no CPython BaseManager client.

    address: "unix:PATH", "tcp:HOST:PORT" (loopback hosts; port 0 picks a
    free one), a (host, port) tuple, or a filesystem path for a Unix socket;
    None for a fresh Unix socket in a private directory. authkey: bytes, or
    None for a fresh random key (start) — connect() needs the server's key.

    start() runs a new server; connect() attaches to a running one (started
    from Python, from C, or by `pshm manager serve`). shutdown() tells the
    server to unlink every block it owns and exit. A server started here
    also ends when this process exits. As a context manager, a manager not
    yet started or connected is started on entry and shut down on exit."""

    def __init__(self, address=None, authkey=None):
        self._address = address  # as given; converted by start() and connect()
        self._authkey = None if authkey is None else bytes(authkey)
        self._mgr = None

    def start(self):
        "Start a manager server process and connect to it."
        self._check_unused()
        self._mgr = _pshm.Manager(_address_text(self._address), self._authkey, True)

    def connect(self):
        "Connect to a running manager server at address with authkey."
        self._check_unused()
        if self._address is None or self._authkey is None:
            raise ValueError("connect() needs the server's address and authkey")
        self._mgr = _pshm.Manager(_address_text(self._address), self._authkey, False)

    def _check_unused(self):
        if self._mgr is not None:
            raise ValueError("the manager is already started or connected")

    def _server(self):
        if self._mgr is None:
            raise ValueError("the manager is not started or connected")
        return self._mgr

    def shutdown(self):
        "Unlink every block the server owns and stop it."
        if self._mgr is not None:
            mgr, self._mgr = self._mgr, None
            mgr.shutdown()

    def __enter__(self):
        if self._mgr is None:
            self.start()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.shutdown()

    def __reduce__(self):
        raise TypeError("a SharedMemoryManager cannot be pickled; pass its address "
                        "and authkey and connect()")

    @property
    def address(self):
        """The server's address, in pshm's form ("unix:PATH" or "tcp:HOST:PORT");
        before start() or connect(), the address as given."""
        return self._mgr.address if self._mgr is not None else self._address

    @property
    def authkey(self):
        "The key both ends prove they hold."
        return self._mgr.authkey if self._mgr is not None else self._authkey

    def SharedMemory(self, size):
        """Returns a new SharedMemory object with the specified size in
        bytes, created and tracked by the manager."""
        return SharedMemory._wrap(self._server().block(size))

    def ShareableList(self, sequence):
        """Returns a new ShareableList object populated with the values
        from the input sequence, created and tracked by the manager."""
        sl = ShareableList.__new__(ShareableList)
        self._server().list(list(sequence or ()), sl)
        sl._track = False
        return sl

    def names(self):
        "The names of the blocks the server owns (a pshm addition)."
        return self._server().names()

    def release(self, name):
        "Unlink one block the server owns, and forget it (a pshm addition)."
        self._server().release(name)
