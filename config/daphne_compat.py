"""daphne and Twisted hooks the realtime package needs.

- Close codes: daphne closes a socket through autobahn's `sendClose`, which
  accepts only 1000 and 3000-4999 and raises for anything else, so
  `websocket.close` with 1008, 1009, 1011, 1012 or 1013 crashed the consumer
  and the client saw 1006. RFC 6455 (section 7.4.1) and the IANA registry
  define those codes for exactly these cases, so they are sent with
  `sendCloseFrame`, the same frame writer without the application-range check.
- Send buffer: each WebSocket's scope gets an ASGI extension,
  `whiteboard.send_buffer`, whose `pending()` is the number of bytes Twisted
  holds for the socket but has not written yet. A client that does not read
  fills that buffer, not the kernel's; the session's outbox bounds it (4413).
  Its `pause_reading()` / `resume_reading()` stop and restart reading from the
  socket, while a connection has its most ops waiting for the database.
- Shutdown: daphne's own shutdown only cancels applications, so clients would
  see the TCP connection drop (1006) instead of `bye` + 1012; and in daphne
  4.2 it raises KeyError, skipping even that, when any HTTP connection has not
  sent a request yet. A "before shutdown" trigger that returns a Deferred makes
  the reactor wait while every socket is closed gracefully.
- daphne's access log gets share-link keys masked (see log_redaction), and
  with WHITEBOARD_LOG_FORMAT=json its lines go through logging
  ("whiteboard.access") as JSON like every other line, instead of plain text
  on stdout.
- Eager writes: Twisted's TCP transport queues every write and asks the event
  loop to watch the socket for writability, writing on a later turn and then
  unwatching it: two epoll_ctl calls and the asyncio selector's bookkeeping per
  frame and socket, 30 % of the fan-out's CPU on the bench's `many` scenario
  (py-spy, issue 11). A socket with nothing queued is written to at once, as
  asyncio's own transports do; only what the kernel does not take is queued
  the usual way, so `SendBuffer.pending` and Twisted's flow control still see
  every byte a slow reader leaves behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from autobahn.exception import Disconnected as PeerGone

from config.log_redaction import redact

access_logger = logging.getLogger("whiteboard.access")


def json_logs() -> bool:
    from django.conf import settings

    return getattr(settings, "WHITEBOARD_LOG_FORMAT", "plain") == "json"


SERVER_CLOSE_CODES = frozenset({1001, 1008, 1009, 1011, 1012, 1013})
SEND_BUFFER_EXTENSION = "whiteboard.send_buffer"


__all__ = ["PeerGone", "SendBuffer", "install"]


def server_close(self: Any, code: int | None = None) -> None:
    code = 1000 if code is None else code
    if code in SERVER_CLOSE_CODES:
        self.sendCloseFrame(code=code, isReply=False)
    else:
        self.sendClose(code=code)


class SendBuffer:
    """The bytes Twisted's transport holds for one socket, not yet written.

    Twisted keeps them in `dataBuffer` (from `offset` on) and in
    `_tempDataBuffer`; neither is public API, so a transport without them
    counts as empty.
    """

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol

    def pending(self) -> int:
        transport = getattr(self.protocol, "transport", None)
        if transport is None:
            return 0
        data = getattr(transport, "dataBuffer", b"")
        offset = getattr(transport, "offset", 0)
        return len(data) - offset + getattr(transport, "_tempDataLen", 0)

    def pause_reading(self) -> None:
        """Read nothing more from the socket: what the client sends waits in
        the TCP buffers (Twisted's IPushProducer, which TCP transports are)."""
        transport = getattr(self.protocol, "transport", None)
        if transport is not None:
            transport.pauseProducing()

    def resume_reading(self) -> None:
        transport = getattr(self.protocol, "transport", None)
        if transport is not None:
            transport.resumeProducing()


def with_send_buffer(create_application: Callable) -> Callable:
    def create(self: Any, protocol: Any, scope: dict) -> Any:
        if scope.get("type") == "websocket":
            extensions = scope.setdefault("extensions", {})
            extensions[SEND_BUFFER_EXTENSION] = SendBuffer(protocol)
        return create_application(self, protocol, scope)

    create.adds_send_buffer = True  # type: ignore[attr-defined]
    return create


def eager(write: Callable) -> Callable:
    """A TCP transport's `write` that sends at once when nothing is queued."""

    def write_now(self: Any, data: bytes) -> None:
        if (
            data
            and not self.TLS
            and self.connected
            and not self._writeDisconnected
            and not self._tempDataLen
            and self.offset >= len(self.dataBuffer)
        ):
            sent = self.writeSomeData(data)
            # A lost connection (an exception returned) is left to the queued
            # path, whose doWrite reports it as it always did.
            if isinstance(sent, int) and sent > 0:
                if sent == len(data):
                    return
                data = data[sent:]
        write(self, data)

    write_now.eager = True  # type: ignore[attr-defined]
    return write_now


def install_eager_writes() -> None:
    from twisted.internet import tcp

    if not getattr(tcp.Connection.write, "eager", False):
        tcp.Connection.write = eager(tcp.Connection.write)  # type: ignore[method-assign]


def redacting(write_entry: Callable) -> Callable:
    """daphne's access log (stdout by default) prints each URL whole."""

    as_json = json_logs()

    def write(
        self: Any,
        host: Any,
        date: Any,
        request: Any,
        status: Any = None,
        length: Any = None,
        *args: Any,
        **kw: Any,
    ) -> Any:
        request = redact(request)
        if as_json:
            fields = {"client": host, "request": request, "status": status}
            access_logger.info(
                '%s "%s" %s %s', host, request, status, length, extra=fields
            )
            return None
        return write_entry(self, host, date, request, status, length, *args, **kw)

    write.redacts = True  # type: ignore[attr-defined]
    return write


def install(on_shutdown: Callable[[], Awaitable[None]] | None = None) -> None:
    """Patch daphne's protocol, server and access log, when running under daphne."""
    ws_protocol = sys.modules.get("daphne.ws_protocol")
    if ws_protocol is not None:
        ws_protocol.WebSocketProtocol.serverClose = server_close
    server = sys.modules.get("daphne.server")
    daphne_server = getattr(server, "Server", None)
    if daphne_server is not None and not getattr(
        daphne_server.create_application, "adds_send_buffer", False
    ):
        daphne_server.create_application = with_send_buffer(
            daphne_server.create_application
        )
    access = sys.modules.get("daphne.access")
    log = getattr(access, "AccessLogGenerator", None)
    if log is not None and not getattr(log.write_entry, "redacts", False):
        log.write_entry = redacting(log.write_entry)
    if ws_protocol is not None:
        install_eager_writes()
    if on_shutdown is not None:
        watch_shutdown(on_shutdown)


def watch_shutdown(on_shutdown: Callable[[], Awaitable[None]]) -> None:
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or not hasattr(reactor, "_asyncioEventloop"):
        return

    def before_shutdown() -> Any:
        from twisted.internet.defer import Deferred

        stop_listening(reactor)
        return Deferred.fromFuture(asyncio.ensure_future(on_shutdown()))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)


def stop_listening(reactor: Any) -> None:
    """Accept no new connection once the server is stopping.

    Otherwise a client told `bye` reconnects at once to the process that is
    closing, and its application starts while the event loop winds down (seen
    to end in a crash of the whole process).
    """
    from twisted.internet.tcp import Port

    for reader in list(reactor.getReaders()):
        if isinstance(reader, Port):
            reader.stopListening()
            # Twisted closes the socket on the reactor's next turn, after the
            # shutdown has begun sending `bye`: until then the kernel still
            # accepts connections, and a client on a busy host got in. Closed
            # now; Port.connectionLost closes it again, harmlessly.
            with contextlib.suppress(OSError):
                reader.socket.close()
