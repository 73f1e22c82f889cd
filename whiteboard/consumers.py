"""The board WebSocket: transport only.

Frames are decoded and validated by `protocol`, ops are committed by the board's
`hub`, and what other connections do reaches this one as `board.*` group events.
"""

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from config.daphne_compat import PeerGone

from . import broadcast, protocol, selectors, services
from .access import BoardNotFound, Refusal
from .changes import OpRequest
from .delivery import Coalescer, OrderedOps
from .identity import new_sid
from .protocol import encode, frames
from .registry import registry

logger = logging.getLogger(__name__)

admit = database_sync_to_async(services.board_admit)
join = database_sync_to_async(services.board_join)
leave = database_sync_to_async(services.presence_leave)
snapshot_page = database_sync_to_async(selectors.snapshot_page)
replay_page = database_sync_to_async(selectors.replay_page)
recheck = database_sync_to_async(services.connection_recheck)

REFUSALS_ALLOWED = 100
REFUSAL_WINDOW = 60.0
CURSOR_INTERVAL = 0.05
SHUTDOWN_DRAIN = 3.0
SHUTDOWN_CLOSE_WAIT = 2.0


def since_from(scope):
    """The `since` query value, or None when it is absent or not a valid seq."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("since")
    if values and values[-1].isdigit() and values[-1].isascii():
        return int(values[-1])
    return None


class TokenBucket:
    """`rate` tokens per second, holding at most `rate`: the per-connection op limit."""

    def __init__(self, rate):
        self.rate = rate
        self.tokens = float(rate)
        self.stamp = time.monotonic()

    def take(self):
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def give_back(self):
        self.tokens = min(self.rate, self.tokens + 1)


class BoardConsumer(AsyncWebsocketConsumer):
    # No channel per connection: the board's hub receives each group event once
    # per process and hands it to every local connection (see hub.py).
    channel_layer_alias = None
    hub = None
    joined = False
    left = False
    closing = False
    ready = False
    heartbeat_timer = ops_out = cursors_out = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.backlog = []
        self.rechecking = asyncio.Lock()
        self.rechecks = set()

    # == connection lifecycle ====================================================

    async def __call__(self, scope, receive, send):
        self.gone = asyncio.Event()
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            # The server cancelled this application while stopping; under daphne
            # the registry's shutdown hook normally said bye already.
            await self.shut_down(wait=False)
            raise
        except Exception:
            # Raised outside dispatch(), by Channels or the server: still leave
            # the board and close cleanly rather than leave a ghost in presence.
            logger.exception(
                "Connection %s on board %s failed",
                getattr(self, "sid", "?"),
                getattr(self, "slug", "?"),
            )
            await self.fail_connection()

    async def connect(self):
        self.limits = services.current_limits()
        self.sid = new_sid()
        self.slug = self.scope["url_route"]["kwargs"]["slug"]
        try:
            admission = await admit(
                slug=self.slug,
                user=self.scope.get("user"),
                session=self.scope.get("session"),
                sid=self.sid,
            )
        except Refusal as refusal:
            await self.refuse_connection(refusal)
            return
        await self.accept()
        self.hub = registry().hub(admission.board.pk, self.slug, self.limits)
        # Subscribe before reading the state, so that no op falls between;
        # events wait in the backlog until the state has been sent.
        self.hub.join(self)
        self.joined = True
        await self.hub.subscribe()
        await self.start_session(admission)

    async def refuse_connection(self, refusal):
        self.closing = True
        await self.accept()
        await self.send(text_data=frames.error(refusal))
        await self.close(code=refusal.close_code)

    async def start_session(self, admission):
        self.author = admission.author
        self.role = admission.role
        self.keys = admission.keys
        self.access_version = admission.access_version
        state = await join(
            admission=admission,
            channel_name=registry().channel,
            server=registry().server,
            since=since_from(self.scope),
            limits=self.limits,
            max_replay=settings.WHITEBOARD_MAX_REPLAY,
        )
        self.board_id = admission.board.pk
        self.locked = state.board["locked"]
        self.title = state.board["title"]
        self.shown = (self.title, self.locked, self.role)
        self.peers = {user["sid"] for user in state.users}
        self.ops_out = OrderedOps(state.seq, self.send_text, self.fetch_ops)
        # At most one `cursors` frame per 50 ms, whichever process sent them.
        self.cursors_out = Coalescer(CURSOR_INTERVAL, self.send_cursors)
        self.bucket = TokenBucket(self.limits.ops_per_second)
        self.refusals = deque(maxlen=REFUSALS_ALLOWED + 1)
        await self.send(text_data=state.welcome)
        await self.send_state(state)
        self.watch_heartbeat()
        await self.become_ready()
        you = {"sid": self.sid, "name": self.author.by, "color": admission.color}
        await self.hub.publish({"type": broadcast.JOINED, "user": you})

    async def send_state(self, state):
        """The snapshot or the replay, read and sent page by page."""
        if state.replay_after is None:
            after_z = None
            while True:
                page = await snapshot_page(
                    board_id=self.board_id, seq=state.seq, after_z=after_z
                )
                for frame in page.frames:
                    await self.send(text_data=frame)
                if page.next_z is None:
                    return
                after_z = page.next_z
        after, sent = state.replay_after, False
        while after is not None:
            page = await replay_page(
                board_id=self.board_id, after=after, upto=state.seq
            )
            for frame in page.frames:
                await self.send(text_data=frame.text)
                sent = True
            after = page.next_after
        if not sent:  # `since` was the board's seq
            await self.send(text_data=frames.no_ops())

    async def become_ready(self):
        """Pass on the events that arrived while the state was being sent."""
        while self.backlog:
            handler, event = self.backlog.pop(0)
            await getattr(self, handler)(event)
        self.ready = True

    async def disconnect(self, code):
        self.gone.set()
        await self.leave_board()

    async def leave_board(self):
        """Leave the group, the hub and the presence list, exactly once."""
        if not self.joined or self.left:
            return
        self.left = True
        if self.heartbeat_timer is not None:
            self.heartbeat_timer.cancel()
        for outbox in (self.ops_out, self.cursors_out):
            if outbox is not None:
                outbox.close()
        self.hub.leave(self)
        await self.hub.publish({"type": broadcast.LEFT, "sid": self.sid})
        await leave(sid=self.sid)

    async def shut_down(self, *, wait=True):
        """The server is stopping: flush this connection's ops, say bye, close 1012.

        With `wait`, give the client a moment to answer the close frame, so that
        it is on the wire before the event loop stops.
        """
        if self.joined and not self.left and not self.closing:
            self.closing = True
            if self.hub is not None:
                await self.hub.drain(SHUTDOWN_DRAIN)
            await self.send(text_data=encode({"type": "bye", "reason": "restart"}))
            await self.close(code=protocol.CLOSE_RESTART)
            if wait:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.gone.wait(), SHUTDOWN_CLOSE_WAIT)
        await self.leave_board()

    async def fail_connection(self):
        """Close with 1011 after an unexpected server error; the client reconnects."""
        if self.closing:
            return
        self.closing = True
        await self.leave_board()
        await self.close(code=protocol.CLOSE_INTERNAL)

    async def dispatch(self, message):
        # Overrides Channels' dispatch, which hops to a thread to close stale DB
        # connections before every message; database_sync_to_async does that
        # where the ORM is actually used. Any unexpected error closes the socket
        # cleanly (1011) after leaving the group, instead of leaving a ghost.
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
                getattr(self, "slug", "?"),
                getattr(self, "sid", "?"),
            )
            await self.fail_connection()

    # == client messages ==========================================================

    async def receive(self, text_data=None, bytes_data=None):
        if not self.joined or self.closing:
            return
        self.last_frame = asyncio.get_running_loop().time()
        if self.too_big(text_data, bytes_data):
            self.closing = True
            await self.leave_board()
            await self.close(code=protocol.CLOSE_TOO_BIG)
            return
        if text_data is None:
            await self.refuse(
                protocol.BadMessage("Binary frames are not accepted: send JSON text.")
            )
            return
        try:
            envelope = protocol.parse_envelope(text_data)
            await self.handlers[envelope.type](self, envelope)
        except protocol.ProtocolError as error:
            await self.refuse(error)

    def too_big(self, text, data):
        limit = self.limits.max_frame_bytes
        if text is None:
            return len(data or b"") > limit
        # Cheap bounds first: a character takes 1 to 4 bytes in UTF-8.
        return len(text) > limit or (
            len(text) * 4 > limit and len(text.encode("utf-8")) > limit
        )

    async def handle_op(self, envelope):
        cid = envelope.cid
        seq = self.hub.committed_seq(cid)
        if seq is not None:  # a resend: answered before, and free of the rate
            await self.send_frame({"type": "ack", "cid": cid, "seq": seq})
            return
        try:
            op, error = protocol.validate(envelope, self.limits), None
        except protocol.ProtocolError as exc:
            op, error = None, exc
        free = self.hub.in_flight(cid)
        request = OpRequest(
            cid=cid,
            kind=envelope.type,
            author=self.author,
            op=op,
            error=error,
            rate_limited=not (free or self.bucket.take()),
            counted=not free,
            keys=self.keys,
            access_version=self.access_version,
        )
        self.hub.submit(request, self)

    async def handle_cursor(self, envelope):
        cursor = protocol.validate(envelope, self.limits)
        self.hub.cursor(self.sid, cursor.x, cursor.y)

    async def handle_draft(self, envelope):
        # Checked in the order ops are: permission before the fields.
        if self.role == "viewer":
            raise protocol.Forbidden("You can view this board but not draw on it.")
        if self.locked:
            raise protocol.Forbidden("This board is locked: nobody can draw on it.")
        draft = protocol.validate(envelope, self.limits)
        self.hub.draft(self.sid, draft.element)

    async def handle_ping(self, envelope):
        ping = protocol.validate(envelope, self.limits)
        await self.send(text_data=frames.pong(ping))

    handlers = {
        **dict.fromkeys(protocol.OP_TYPES, handle_op),
        protocol.CURSOR: handle_cursor,
        protocol.DRAFT: handle_draft,
        protocol.PING: handle_ping,
    }

    async def op_outcome(self, request, outcome):
        """Called by the hub after a batch: acks and errors go to the sender only."""
        if outcome.ack:
            if request.counted and not request.rate_limited:
                self.bucket.give_back()
            await self.send_frame(
                {"type": "ack", "cid": outcome.cid, "seq": outcome.last}
            )
        elif outcome.error is not None:
            await self.refuse(outcome.error)

    async def refuse(self, error):
        """Send an error frame; the 101st within a minute also closes with 1008."""
        await self.send_text(frames.error(error))
        now = time.monotonic()
        self.refusals.append(now)
        if (
            len(self.refusals) > REFUSALS_ALLOWED
            and now - self.refusals[0] <= REFUSAL_WINDOW
        ):
            self.closing = True
            await self.leave_board()
            await self.close(code=protocol.CLOSE_POLICY)

    async def send_frame(self, frame):
        if not self.left:
            await self.send(text_data=encode(frame))

    async def send_text(self, text):
        if not self.left:
            await self.send(text_data=text)

    async def fetch_ops(self, after, upto):
        batches = []
        while after is not None:
            page = await replay_page(board_id=self.board_id, after=after, upto=upto)
            batches.extend((f.first, f.last, f.text) for f in page.frames)
            after = page.next_after
        return batches

    async def send(self, text_data=None, bytes_data=None, close=False):
        # A peer can vanish between daphne's check and the write; its
        # websocket.disconnect follows, so there is nothing else to do here.
        with contextlib.suppress(PeerGone):
            await super().send(text_data=text_data, bytes_data=bytes_data, close=close)

    # == heartbeat ==================================================================

    def watch_heartbeat(self):
        loop = asyncio.get_running_loop()
        self.last_frame = loop.time()
        self.heartbeat_timer = loop.call_later(self.idle_limit(), self.check_heartbeat)

    def idle_limit(self):
        return 3 * self.limits.heartbeat_seconds

    def check_heartbeat(self):
        loop = asyncio.get_running_loop()
        remaining = self.last_frame + self.idle_limit() - loop.time()
        if remaining > 0:
            self.heartbeat_timer = loop.call_later(remaining, self.check_heartbeat)
            return
        self.heartbeat_timer = None
        loop.create_task(self.close_idle())

    async def close_idle(self):
        if self.closing or self.left:
            return
        self.closing = True
        await self.leave_board()
        await self.close(code=protocol.CLOSE_IDLE)

    # == group events =================================================================

    async def on_event(self, handler, event):
        """Called by the hub for each board event; holds them until the state is out."""
        if self.left:
            return
        if not self.ready:
            self.backlog.append((handler, event))
            return
        try:
            await getattr(self, handler)(event)
        except Exception:
            logger.exception(
                "Error handling %s on board %s (connection %s)",
                event.get("type"),
                self.slug,
                self.sid,
            )
            await self.fail_connection()

    # -- handlers, one per event type ---------------------------------------------

    async def board_ops(self, event):
        await self.ops_out.offer(event["first"], event["last"], event["text"])

    async def board_volatile(self, event):
        for sid, item in event["cursors"]:
            if sid != self.sid:
                self.cursors_out.add(sid, item)
        for sid, frame in event["drafts"]:
            if sid != self.sid:
                await self.send(text_data=frame)

    async def send_cursors(self, items):
        cursors = ",".join(items.values())
        await self.send(text_data=f'{{"type":"cursors","cursors":[{cursors}]}}')

    async def board_joined(self, event):
        user = event["user"]
        if user["sid"] != self.sid and user["sid"] not in self.peers and not self.left:
            self.peers.add(user["sid"])
            await self.send_frame({"type": "joined", "user": user})

    async def board_left(self, event):
        if event["sid"] in self.peers:
            self.peers.discard(event["sid"])
            await self.send_frame({"type": "left", "sid": event["sid"]})

    async def board_meta(self, event):
        """The board's settings or access rules changed: re-decide this role.

        The database is asked in a task of its own, so that the events behind
        this one reach every connection of the process without waiting.
        """
        self.title, self.locked = event["title"], event["locked"]
        task = asyncio.get_running_loop().create_task(self.recheck_role())
        # The loop keeps only a weak reference to a task.
        self.rechecks.add(task)
        task.add_done_callback(self.rechecks.discard)

    async def recheck_role(self):
        try:
            await self._recheck_role()
        except Exception:
            logger.exception(
                "Rechecking access of connection %s on board %s failed",
                self.sid,
                self.slug,
            )
            await self.fail_connection()

    async def _recheck_role(self):
        # One at a time: the last recheck reads the last committed rules.
        async with self.rechecking:
            if self.closing or self.left:
                return
            try:
                role, self.access_version = await recheck(
                    board_id=self.board_id,
                    sid=self.sid,
                    user=self.scope.get("user"),
                    keys=self.keys,
                )
            except BoardNotFound as gone:
                await self.lose_access(gone)
                return
            except Refusal:
                # Whatever the reason, an open socket that lost access gets 4403.
                await self.lose_access()
                return
            if role != self.role:
                self.role = role
                self.author = dataclasses.replace(self.author, role=role)
            if (self.title, self.locked, self.role) != self.shown:
                await self.send_board_frame()

    async def send_board_frame(self):
        self.shown = (self.title, self.locked, self.role)
        board = {
            "slug": self.slug,
            "title": self.title,
            "role": self.role,
            "locked": self.locked,
        }
        await self.send_frame({"type": "board", "board": board})

    async def board_gone(self, event):
        await self.lose_access(BoardNotFound("This board was deleted."))

    async def board_kick(self, event):
        await self.lose_access(
            Refusal(
                "A moderator disconnected everyone from this board. "
                "Reload the page to join again."
            )
        )

    async def lose_access(self, refusal=None):
        """This connection may no longer see the board: say why and close (44xx)."""
        if self.closing:
            return
        self.closing = True
        refusal = refusal or Refusal("You no longer have access to this board.")
        await self.send_text(frames.error(refusal))
        await self.leave_board()
        await self.close(code=refusal.close_code)
