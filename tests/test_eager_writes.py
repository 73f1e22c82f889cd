"""config.daphne_compat's eager writes: a frame goes to the kernel at once.

Twisted's TCP transport with the patch, on a real socket pair; the reactor is
replaced by a recorder of the writability watches the transport asks for.
"""

import socket

import pytest
from twisted.internet import tcp

from config import daphne_compat


class Watches:
    """The IReactorFDSet calls a transport makes, recorded."""

    def __init__(self):
        self.writers = set()

    def addWriter(self, writer):  # noqa: N802 (Twisted's names)
        self.writers.add(writer)

    def removeWriter(self, writer):  # noqa: N802
        self.writers.discard(writer)

    def addReader(self, reader):  # noqa: N802
        pass

    def removeReader(self, reader):  # noqa: N802
        pass


@pytest.fixture
def pair():
    daphne_compat.install_eager_writes()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    watches = Watches()
    transport = tcp.Connection(ours, None, watches)
    transport.connected = True  # as tcp.Server is once accepted
    theirs.settimeout(5)
    yield transport, theirs, watches
    ours.close()
    theirs.close()


def read_all(theirs, transport, watches, size):
    """Read `size` bytes, letting the transport write what it queued."""
    got = bytearray()
    while len(got) < size:
        if transport in watches.writers:
            transport.doWrite()
        got += theirs.recv(1 << 20)
    return bytes(got)


def test_a_write_to_an_idle_socket_is_on_the_wire_at_once(pair):
    transport, theirs, watches = pair
    transport.write(b'{"type":"ops","ops":[]}')
    assert theirs.recv(100) == b'{"type":"ops","ops":[]}'
    assert watches.writers == set()  # no event loop turn was needed


def test_what_the_kernel_does_not_take_is_queued_in_order(pair):
    transport, theirs, watches = pair
    big = bytes(range(256)) * 40_000  # 10 MB: more than a socket buffer holds
    transport.write(big)
    queued = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    assert 0 < queued < len(big)  # SendBuffer.pending sees the rest
    assert watches.writers == {transport}
    transport.write(b"tail")  # never sent ahead of what is queued
    assert read_all(theirs, transport, watches, len(big) + 4) == big + b"tail"
    assert watches.writers == set()
