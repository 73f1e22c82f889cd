"""The board WebSocket: transport only.

Everything a connection does is its `Session`'s (session.py); this class
turns ASGI events into session calls and offers the session a socket to send
to and close.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from config.daphne_compat import PeerGone
from whiteboard.protocol import frames
from whiteboard.protocol.messages import CLOSE_RESTART

from .session import Session

logger = logging.getLogger(__name__)


class BoardConsumer(AsyncWebsocketConsumer):
    # No channel per connection: the process's one channel receives each group
    # event once and hands it to every local connection (see process.py).
    channel_layer_alias = None
    session: Session

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.session = Session(self, scope)
        try:
            await self.serve(scope, receive, send)
        except BaseException as exc:
            # Raised outside dispatch(): the server cancelled the application
            # while stopping, or Channels itself failed. Close cleanly either
            # way rather than leave a ghost in presence.
            if not isinstance(exc, Exception):
                # Cancelled by a stopping server: normally process.shut_down
                # said bye already, and this does nothing.
                await self.session.end(
                    CLOSE_RESTART, frames.bye(), reason="server stopping"
                )
                raise
            logger.exception("Connection %s failed", self.session.sid)
            await self.session.fail()

    async def serve(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels' `AsyncConsumer.__call__` for a consumer without a channel
        of its own: with one source of messages, each is awaited directly,
        where Channels' `await_many_dispatch` makes a Task and an
        `asyncio.wait` per incoming frame."""
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    # == connection lifecycle ====================================================

    async def connect(self) -> None:
        await self.session.start()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        await self.session.receive(text_data, bytes_data)

    async def disconnect(self, code: int) -> None:
        await self.session.peer_gone(code)

    async def dispatch(self, message: dict) -> None:
        # Overrides Channels' dispatch, which hops to a thread to close stale DB
        # connections before every message; database_sync_to_async does that
        # where the ORM is actually used. Any unexpected error closes the socket
        # cleanly (1011) after leaving the board, instead of leaving a ghost.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        try:
            await handler(message)
        except StopConsumer:
            raise
        except Exception:
            logger.exception(
                "Error handling %s on board %s (connection %s)",
                message["type"],
                self.session.slug,
                self.session.sid,
            )
            await self.session.fail()

    # == the socket, as the session uses it =========================================

    async def send_text(self, text: str) -> None:
        # A peer can vanish between daphne's check and the write; its
        # websocket.disconnect follows, so there is nothing else to do here.
        with contextlib.suppress(PeerGone):
            await self.send(text_data=text)

    async def close_socket(self, code: int) -> None:
        with contextlib.suppress(PeerGone):
            await self.close(code=code)
