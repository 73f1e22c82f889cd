"""One connection's life: admitted, sent the board, live, ended.

A `Session` holds everything one socket needs: its state, its bounds (the
outbox, the token buckets, the refusal count, the pending ops), its heartbeat,
and ONE exit, `end(code, frame=None)`, that every way out goes through:
refusals, oversize frames, idle and slow clients, lost access, server errors,
a stopping server, and the client's own close. `end` leaves the room and the
presence list exactly once and always closes the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import hashlib
import logging
import time
from collections import deque
from collections.abc import Coroutine
from types import SimpleNamespace
from typing import Any, Protocol
from urllib.parse import parse_qs

from django.conf import settings
from django.db import DatabaseError

from config.log_format import log_fields
from whiteboard import broadcast, metrics, ratelimit, services
from whiteboard.changes import OpRequest, Outcome
from whiteboard.identity import Author, new_sid
from whiteboard.protocol import frames, messages, parse_envelope, validate
from whiteboard.protocol.frames import OpsFrame, size
from whiteboard.protocol.messages import (
    CLOSE_IDLE,
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    CLOSE_RESTART,
    CLOSE_SLOW_READER,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN,
    BoardNotFound,
    Envelope,
    LoginRequired,
    ProtocolError,
    Refusal,
)

from . import process
from .outbox import Coalescer, Outbox, OutboxBounds, Page, send_pages, trimmed
from .room import VIEWPORT_INTERVAL, Event, Room

logger = logging.getLogger(__name__)

REFUSALS_ALLOWED = 100
REFUSAL_WINDOW = 60.0
CURSOR_INTERVAL = 0.05
SHUTDOWN_DRAIN = 3.0
SHUTDOWN_CLOSE_WAIT = 2.0
# How long an ending connection waits for its last frames to be handed over.
FLUSH_WAIT = 1.0
SEND_BUFFER_EXTENSION = "whiteboard.send_buffer"
# A seq is a 64-bit integer: a longer `since` is ahead of every board.
MAX_SEQ_DIGITS = 19


class State(enum.Enum):
    ADMITTING = "admitting"  # access not decided yet; nothing sent
    SYNCING = "syncing"  # welcome and board state being sent; live frames held
    OPEN = "open"
    ENDING = "ending"
    ENDED = "ended"


LIVE = frozenset({State.SYNCING, State.OPEN})


class Transport(Protocol):
    """The socket, as the consumer offers it."""

    async def accept(self) -> None: ...

    async def send_text(self, text: str) -> None: ...

    async def close_socket(self, code: int) -> None: ...


class SendBuffer(Protocol):
    """The ASGI server's socket, as config/daphne_compat.py offers it."""

    def pending(self) -> int:
        """Bytes the server holds for the socket, not yet written."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class Flag:
    """An `asyncio.Event` for one connection, without the Event's own deque of
    waiters (760 bytes, made up front): a server holds thousands of
    connections with two flags each, and a flag is rarely waited for."""

    __slots__ = ("value", "waiter")

    def __init__(self, value: bool = False) -> None:
        self.value = value
        self.waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self.value

    def set(self) -> None:
        self.value = True
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self.value = False

    async def wait(self) -> None:
        if self.value:
            return
        if self.waiter is None:
            self.waiter = asyncio.get_running_loop().create_future()
        # Shielded: a waiter that is cancelled leaves the others waiting.
        await asyncio.shield(self.waiter)


class TokenBucket:
    """`rate` tokens per second, holding at most `rate`."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def give_back(self) -> None:
        self.tokens = min(self.rate, self.tokens + 1)


def outbox_bounds() -> OutboxBounds:
    return OutboxBounds(
        max_bytes=settings.WHITEBOARD_SEND_BUFFER_BYTES,
        high_water=min(512 * 1024, settings.WHITEBOARD_SEND_BUFFER_BYTES // 2),
        stall_seconds=settings.WHITEBOARD_SEND_STALL_SECONDS,
    )


def since_from(scope: dict) -> int | None:
    """The `since` query value, or None when it is absent or not a valid seq."""
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("since")
    if not (values and values[-1].isdigit() and values[-1].isascii()):
        return None
    # Python refuses to convert more than 4,300 digits; a seq never has 20.
    digits = values[-1].lstrip("0") or "0"
    return int(digits) if len(digits) <= MAX_SEQ_DIGITS else None


def epoch_from(scope: dict) -> str | None:
    """The `epoch` query value (PROTOCOL.md 1.1, "Board epoch"), or None.

    Any string names an epoch, the empty one too; only an epoch equal to the
    board's lets a `since` be replayed, so one of another shape never matches.
    """
    query = scope.get("query_string", b"").decode("latin-1")
    values = parse_qs(query, keep_blank_values=True).get("epoch")
    return values[-1][:64] if values else None


def client_keys(scope: dict) -> tuple[str, ...]:
    """What a connection is counted against: its address and its session."""
    headers = dict(scope.get("headers") or ())
    meta = {
        "REMOTE_ADDR": (scope.get("client") or ("",))[0] or "",
        "HTTP_X_FORWARDED_FOR": headers.get(b"x-forwarded-for", b"").decode("latin-1"),
    }
    address = ratelimit.client_ip(SimpleNamespace(META=meta))
    keys = [f"ip:{address}"] if address else []
    session_key = getattr(scope.get("session"), "session_key", None)
    if session_key:
        keys.append(f"session:{hashlib.sha256(session_key.encode()).hexdigest()[:32]}")
    return tuple(keys)


class Session:
    """One WebSocket on one board, from the handshake to the close."""

    def __init__(self, transport: Transport, scope: dict) -> None:
        self.transport = transport
        self.scope = scope
        self.state = State.ADMITTING
        self.accepted = False
        self.gone = Flag()
        self.sid = new_sid()
        self.slug: str = scope["url_route"]["kwargs"]["slug"]
        self.limits = services.current_limits()
        self.process = process.current()
        self.room: Room | None = None
        self.user_id: int | None = None
        # (session key, user id) of a logged-in socket, checked every heartbeat.
        self.login: tuple[str, int] | None = None
        self.author: Author | None = None
        self.color = ""
        # Whether this connection's presence row was written (board_join).
        self.listed = False
        self.role = "viewer"
        self.keys: tuple = ()
        self.access_version = 0
        self.title = ""
        self.locked = False
        self.shown: tuple = ()
        self.client_keys: tuple[str, ...] = ()
        probe: SendBuffer | None = scope.get("extensions", {}).get(
            SEND_BUFFER_EXTENSION
        )
        self.probe = probe
        self.outbox = Outbox(
            transport.send_text,
            probe.pending if probe is not None else lambda: 0,
            outbox_bounds(),
            self.overflowed,
            lambda: self.spawn(self.fail()),
        )
        self.delivered = 0
        self.held: list[OpsFrame | Event] = []
        self.held_bytes = 0
        self.peers: set[str] = set()
        self.pending: dict[str, bool] = {}  # cid -> a resend is to be answered
        # Cleared while the socket is not read: too many ops are being committed.
        self.ops_room = Flag(True)
        self.bucket = TokenBucket(self.limits.ops_per_second)
        self.drafts = TokenBucket(settings.WHITEBOARD_DRAFTS_PER_SECOND)
        self.refusals: deque[float] | None = None  # made at the first refusal
        self.last_frame = asyncio.get_running_loop().time()
        self.cursors_out = Coalescer(CURSOR_INTERVAL, self.send_cursors)
        # Made when another connection's viewport first arrives: most never need one.
        self.viewports_out: Coalescer | None = None
        self.rechecking = asyncio.Lock()
        self.tasks: set[asyncio.Task[Any]] = set()
        # Counted in whiteboard_connections (accepted to be served).
        self.counted = False

    def __repr__(self) -> str:
        return f"<Session {self.sid} on {self.slug} {self.state.value}>"

    # == opening

    async def start(self) -> None:
        """Admit, join, send the board, go live; any refusal ends the session."""
        try:
            await self.open()
        except DatabaseError as exc:
            logger.warning("Board %s: database unavailable: %s", self.slug, exc)
            await self.unavailable()

    async def open(self) -> None:
        keys = client_keys(self.scope)
        if not self.process.take_address(keys):
            await self.refuse_connection(messages.TooManyConnections())
            return
        self.client_keys = keys
        try:
            admission = await process.admit(
                slug=self.slug,
                user=self.scope.get("user"),
                session=self.scope.get("session"),
                sid=self.sid,
            )
        except Refusal as refusal:
            await self.refuse_connection(refusal)
            return
        await self.transport.accept()
        self.accepted = True
        self.counted = True
        metrics.CONNECTIONS.inc()
        self.take_admission(admission)
        if await self.join_room(admission.board.pk):
            await self.send_state(admission)

    def take_admission(self, admission: services.Admission) -> None:
        self.author = admission.author
        self.user_id = admission.author.user_id
        session_key = getattr(self.scope.get("session"), "session_key", None)
        if self.user_id is not None and session_key:
            self.login = (session_key, self.user_id)
        self.role = admission.role
        self.color = admission.color
        self.keys = admission.keys
        self.access_version = admission.access_version

    async def refuse_connection(self, refusal: ProtocolError) -> None:
        await self.end_refused(refusal)

    async def join_room(self, board_id: int) -> bool:
        """Subscribe before reading the state, so that no op falls between."""
        self.room = self.process.room(board_id, self.slug, self.limits)
        self.room.join(self)
        self.state = State.SYNCING
        try:
            await self.room.subscribe()
            if self.user_id is not None:
                await self.process.watch_user(self.user_id, self)
        except Exception as exc:
            logger.warning(
                "Board %s: channel layer unavailable: %s",
                self.slug,
                exc,
                extra=self.log_fields(),
            )
            await self.end(CLOSE_TRY_AGAIN, reason="channel layer unavailable")
            return False
        return True

    async def send_state(self, admission: services.Admission) -> None:
        assert self.room is not None
        joined = await process.join(
            admission=admission,
            channel_name=self.process.channel,
            server=self.process.server,
            since=since_from(self.scope),
            epoch=epoch_from(self.scope),
            limits=self.limits,
            max_replay=settings.WHITEBOARD_MAX_REPLAY,
        )
        self.listed = True
        self.delivered = joined.seq
        self.room.synced(joined.seq)
        logger.info(
            "Connection %s opened on board %s as %s (%s)",
            self.sid,
            self.slug,
            self.role,
            "guest" if self.user_id is None else f"user {self.user_id}",
            extra=self.log_fields(),
        )
        self.title, self.locked = joined.board["title"], joined.board["locked"]
        self.shown = (self.title, self.locked, self.role)
        self.peers = {user["sid"] for user in joined.users}
        self.outbox.push(joined.welcome)
        if joined.replay_after is None:
            await self.send_snapshot(joined.seq)
        else:
            await self.send_replay(joined.replay_after, joined.seq)
        await self.go_live(self.you())

    def you(self) -> dict:
        """This connection as `welcome` and `joined` name it."""
        assert self.author is not None
        return {"sid": self.sid, "name": self.author.by, "color": self.color}

    def presence(self) -> dict | None:
        """The fields of this connection's presence row, once it was written."""
        if not self.listed or self.room is None or self.author is None:
            return None
        return {
            **self.you(),  # sid, name, color
            "board_id": self.room.board_id,
            "user_id": self.user_id,
            "role": self.role,
        }

    async def send_snapshot(self, seq: int) -> None:
        """The board, read a page at a time and written as the socket drains."""
        assert self.room is not None
        board_id = self.room.board_id

        async def read(after_z: int | None) -> Page:
            page = await process.snapshot_page(
                board_id=board_id, seq=seq, after_z=after_z
            )
            return page.frames, page.next_z

        await send_pages(self.outbox, read, None, going=self.syncing)

    async def send_replay(self, after: int, upto: int) -> None:
        """The ops after `after`, page by page; one empty frame if there are none."""
        assert self.room is not None
        board_id = self.room.board_id

        async def read(cursor: int | None) -> Page:
            assert cursor is not None
            page = await process.replay_page(board_id=board_id, after=cursor, upto=upto)
            return [frame.text for frame in page.frames], page.next_after

        sent = await send_pages(self.outbox, read, after, going=self.syncing)
        if not sent:  # `since` was the board's seq
            self.outbox.push(frames.no_ops())

    def syncing(self) -> bool:
        return self.state is State.SYNCING

    async def go_live(self, you: dict) -> None:
        """Pass on what arrived while the state was sent, then announce us."""
        if self.state is not State.SYNCING:
            return
        self.state = State.OPEN
        held, self.held, self.held_bytes = self.held, [], 0
        for item in held:
            if isinstance(item, OpsFrame):
                self.send_ops(item)
            else:
                self.on_event(item)
        assert self.room is not None
        await self.room.announce({"type": broadcast.JOINED, "user": you}, sid=self.sid)

    # == client frames

    async def receive(self, text: str | None, data: bytes | None) -> None:
        if self.state not in LIVE:
            return
        self.last_frame = asyncio.get_running_loop().time()
        if self.too_big(text, data):
            await self.end(CLOSE_TOO_BIG, reason="frame over max_frame_bytes")
            return
        try:
            if text is None:
                raise messages.BadMessage(
                    "Binary frames are not accepted: send JSON text."
                )
            envelope = parse_envelope(text)
            self.handlers[envelope.type](self, envelope)
        except ProtocolError as error:
            self.refuse(error)
        if (
            self.state in LIVE
            and len(self.pending) >= settings.WHITEBOARD_MAX_PENDING_OPS
        ):
            await self.wait_for_commits()

    async def wait_for_commits(self) -> None:
        """Read nothing more until fewer than WHITEBOARD_MAX_PENDING_OPS of this
        connection's ops wait for the database.

        A client drawing faster than the server commits is slowed down, not
        refused: its next frames wait in its own TCP buffers (the server stops
        reading the socket), and it sees its acks arrive later. The wait ends
        as commits finish, or when the connection ends (a failed commit ends
        it with 1013 or 1011).
        """
        self.ops_room.clear()
        if self.probe is not None:
            self.probe.pause_reading()
        try:
            await self.ops_room.wait()
        finally:
            if self.probe is not None:
                self.probe.resume_reading()
            # The silence meanwhile was the server's, not the client's.
            self.last_frame = asyncio.get_running_loop().time()

    def too_big(self, text: str | None, data: bytes | None) -> bool:
        limit = self.limits.max_frame_bytes
        if text is None:
            return len(data or b"") > limit
        # Cheap bounds first: a character takes 1 to 4 bytes in UTF-8.
        return len(text) > limit or (len(text) * 4 > limit and size(text) > limit)

    def handle_op(self, envelope: Envelope) -> None:
        assert self.room is not None and self.author is not None
        cid = envelope.cid
        assert cid is not None
        seq = self.room.committed_seq(cid)
        if seq is not None:  # a resend: answered before, and free of the rate
            self.outbox.push(frames.ack(cid, seq))
            return
        if cid in self.pending:  # answered once when it commits; copies dropped
            self.pending[cid] = True
            return
        free = self.room.in_flight(cid)
        limited = not (free or self.bucket.take())
        op, error = None, None
        if not limited:
            try:
                op = validate(envelope, self.limits)
            except ProtocolError as exc:
                error = exc
        request = OpRequest(
            cid=cid,
            kind=envelope.type,
            author=self.author,
            op=op,
            error=error,
            rate_limited=limited,
            counted=not free,
            keys=self.keys,
            access_version=self.access_version,
        )
        request.received = self.last_frame
        self.pending[cid] = False
        self.room.submit(request, self)

    def handle_cursor(self, envelope: Envelope) -> None:
        assert self.room is not None
        cursor = validate(envelope, self.limits)
        assert isinstance(cursor, messages.Cursor)
        self.room.cursor(self.sid, cursor.x, cursor.y)

    def handle_viewport(self, envelope: Envelope) -> None:
        # Volatile, like a cursor: viewers and locked boards may send it too.
        assert self.room is not None
        viewport = validate(envelope, self.limits)
        assert isinstance(viewport, messages.Viewport)
        self.room.viewport(
            self.sid, viewport.x, viewport.y, viewport.w, viewport.h, viewport.follows
        )

    def handle_draft(self, envelope: Envelope) -> None:
        assert self.room is not None
        # Checked in the order ops are: permission before the fields.
        if self.role == "viewer":
            raise messages.Forbidden("You can view this board but not draw on it.")
        if self.locked:
            raise messages.Forbidden("This board is locked: nobody can draw on it.")
        draft = validate(envelope, self.limits)
        assert isinstance(draft, messages.Draft)
        if self.drafts.take():  # volatile: throttled by dropping
            self.room.draft(self.sid, draft.element)

    def handle_ping(self, envelope: Envelope) -> None:
        ping = validate(envelope, self.limits)
        assert isinstance(ping, messages.Ping)
        self.outbox.push(frames.pong(ping))

    handlers = {
        **dict.fromkeys(messages.OP_TYPES, handle_op),
        messages.CURSOR: handle_cursor,
        messages.VIEWPORT: handle_viewport,
        messages.DRAFT: handle_draft,
        messages.PING: handle_ping,
    }

    def refuse(self, error: ProtocolError, cid: str | None = None) -> None:
        """Send an error frame; the 101st within a minute also closes with 1008."""
        metrics.refused(error.code)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "Connection %s on %s: refused (%s)",
                self.sid,
                self.slug,
                error.code,
                extra=self.log_fields(error_code=error.code, cid=cid or error.cid),
            )
        self.outbox.push(frames.error(error))
        now = time.monotonic()
        if self.refusals is None:
            self.refusals = deque(maxlen=REFUSALS_ALLOWED + 1)
        self.refusals.append(now)
        if (
            len(self.refusals) > REFUSALS_ALLOWED
            and now - self.refusals[0] <= REFUSAL_WINDOW
        ):
            self.spawn(self.end(CLOSE_POLICY, reason="too many refused frames"))

    # == the room's calls (Connection) =============================================

    def on_outcome(self, request: OpRequest, outcome: Outcome) -> None:
        """After a batch: acks and errors go to the sender only."""
        resent = self.pending.pop(request.cid, False)
        if len(self.pending) < settings.WHITEBOARD_MAX_PENDING_OPS:
            self.ops_room.set()
        if outcome.ack:
            if request.counted and not request.rate_limited:
                self.bucket.give_back()
            self.outbox.push(frames.ack(outcome.cid, outcome.last or 0))
        elif outcome.error is not None:
            self.refuse(outcome.error, request.cid)
            if isinstance(outcome.error, messages.AccessChanged):
                self.spawn(self.recheck_role())
        elif resent and outcome.last is not None:
            self.outbox.push(frames.ack(outcome.cid, outcome.last))

    def on_ops(self, frame: OpsFrame) -> None:
        if self.state is State.SYNCING:
            self.hold(frame, size(frame.text))
        elif self.state is State.OPEN:
            self.send_ops(frame)

    def send_ops(self, frame: OpsFrame) -> None:
        if frame.last <= self.delivered:
            return
        if frame.first <= self.delivered:  # overlaps what was sent: drop repeats
            frame = trimmed(frame, self.delivered)
        self.delivered = frame.last
        self.outbox.push(frame.text)

    def hold(self, item: OpsFrame | Event, cost: int) -> None:
        """Live traffic waits while the state is sent; bounded like the outbox."""
        self.held.append(item)
        self.held_bytes += cost
        if self.held_bytes > self.outbox.bounds.max_bytes:
            self.held.clear()
            self.overflowed("too much arrived while the board was being sent")

    def on_event(self, event: Event) -> None:
        kind = event["type"]
        if self.state is State.SYNCING and kind not in ENDING_EVENTS:
            if kind != broadcast.VOLATILE:
                self.hold(event, 256)
        elif self.state is State.OPEN or kind in ENDING_EVENTS:
            handler = self.event_handlers.get(kind)
            if handler is not None:
                handler(self, event)

    def abort(self, code: int) -> None:
        self.spawn(self.end(code, reason="committing its ops failed"))

    def tick(self, now: float) -> None:
        if self.state not in LIVE:
            return
        waiting = not self.ops_room.is_set()  # the server is not reading
        if not waiting and now - self.last_frame > 3 * self.limits.heartbeat_seconds:
            self.spawn(self.end(CLOSE_IDLE, reason="no frame within 3 heartbeats"))
            return
        self.outbox.tick(now)

    def queued_bytes(self) -> int:
        return self.outbox.pending()

    def overflowed(self, reason: str) -> None:
        self.spawn(self.end(CLOSE_SLOW_READER, reason=f"does not read: {reason}"))

    # -- events, one handler per type -----------------------------------------------

    def on_joined(self, event: Event) -> None:
        user = event["user"]
        if user["sid"] != self.sid and user["sid"] not in self.peers:
            self.peers.add(user["sid"])
            self.outbox.push(frames.joined(user))

    def on_left(self, event: Event) -> None:
        if self.viewports_out is not None:  # forgotten: never sent after `left`
            self.viewports_out.discard(event["sid"])
        if event["sid"] in self.peers:
            self.peers.discard(event["sid"])
            self.outbox.push(frames.left(event["sid"]))

    def on_volatile(self, event: Event) -> None:
        for sid, item in event["cursors"]:
            if sid != self.sid:
                self.cursors_out.add(sid, item)
        for sid, text in event["drafts"]:
            if sid != self.sid:
                self.outbox.push_volatile(text)
        for sid, item in event.get("viewports", ()):
            if sid != self.sid:
                if self.viewports_out is None:
                    self.viewports_out = Coalescer(
                        VIEWPORT_INTERVAL, self.send_viewports
                    )
                self.viewports_out.add(sid, item)

    async def send_cursors(self, items: dict) -> None:
        self.outbox.push_volatile(frames.cursors(items.values()))

    async def send_viewports(self, items: dict) -> None:
        self.outbox.push_volatile(frames.viewports(items.values()))

    def on_meta(self, event: Event) -> None:
        """The board's settings or access rules changed: re-decide this role."""
        self.title, self.locked = event["title"], event["locked"]
        self.spawn(self.recheck_role())

    def on_gone(self, event: Event) -> None:
        self.spawn(self.lose_access(BoardNotFound("This board was deleted.")))

    def on_kick(self, event: Event) -> None:
        refusal = Refusal(
            "A moderator disconnected everyone from this board. "
            "Reload the page to join again."
        )
        self.spawn(self.lose_access(refusal))

    def on_reset(self, event: Event) -> None:
        self.spawn(
            self.end(
                CLOSE_RESTART, frames.bye(), reason="the board's history was replaced"
            )
        )

    def on_user_ended(self, event: Event) -> None:
        self.spawn(self.lose_access(LoginRequired(str(event.get("message") or ""))))

    event_handlers = {
        broadcast.JOINED: on_joined,
        broadcast.LEFT: on_left,
        broadcast.VOLATILE: on_volatile,
        broadcast.META: on_meta,
        broadcast.GONE: on_gone,
        broadcast.KICK: on_kick,
        broadcast.USER_ENDED: on_user_ended,
        broadcast.RESET: on_reset,
    }

    # -- access

    async def recheck_role(self) -> None:
        # One at a time: the last recheck reads the last committed rules.
        async with self.rechecking:
            if self.state not in LIVE or self.room is None or self.author is None:
                return
            try:
                role, self.access_version = await process.recheck(
                    board_id=self.room.board_id,
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
                self.shown = (self.title, self.locked, self.role)
                info = frames.board_info(
                    slug=self.slug, title=self.title, role=self.role, locked=self.locked
                )
                self.outbox.push(frames.board(info))

    async def lose_access(self, refusal: Refusal | None = None) -> None:
        """This connection may no longer see the board: say why and close (44xx)."""
        refusal = refusal or Refusal("You no longer have access to this board.")
        await self.end_refused(refusal)

    # == the one way out

    async def end_refused(self, refusal: ProtocolError) -> None:
        """Close with the refusal's code after its error frame."""
        metrics.refused(refusal.code)
        await self.end(
            refusal.close_code,
            frames.error(refusal),
            reason=refusal.message,
            error_code=refusal.code,
        )

    async def end(
        self,
        code: int | None,
        frame: str | None = None,
        *,
        reason: str = "",
        error_code: str | None = None,
        client_code: int | None = None,
    ) -> None:
        """Leave the board and close the socket with `code`, exactly once.

        `code` None means the client closed (with `client_code`) or vanished:
        there is nothing left to send. `frame` (an error, or `bye`) is the last
        frame sent. Counted and logged once, with `reason`.
        """
        if self.state in (State.ENDING, State.ENDED):
            return
        self.state = State.ENDING
        self.count_close(code, reason, error_code, client_code)
        room: Room | None = None
        try:
            if code is not None:
                await self.say_last(code, frame)
            room = self.detach()
            if code is not None:
                await self.transport.close_socket(code)
        except Exception:
            logger.exception("Connection %s on %s: closing failed", self.sid, self.slug)
        finally:
            try:
                await self.forget(room or self.detach())
            finally:
                self.state = State.ENDED

    def count_close(
        self,
        code: int | None,
        reason: str,
        error_code: str | None,
        client_code: int | None,
    ) -> None:
        by = "client" if code is None else "server"
        shown = code if code is not None else client_code
        metrics.closed(shown, by=by)
        if self.counted:
            self.counted = False
            metrics.CONNECTIONS.dec()
        logger.info(
            "Connection %s on board %s closed by the %s with %s%s",
            self.sid,
            self.slug,
            by,
            shown if shown is not None else "no code",
            f": {reason}" if reason else "",
            extra=self.log_fields(close_code=shown, by=by, error_code=error_code),
        )

    def log_fields(self, **more: Any) -> dict[str, object]:
        """The fields of this connection's JSON log lines (config/log_format.py)."""
        return log_fields(board=self.slug, sid=self.sid, user=self.user_id, **more)

    async def say_last(self, code: int, frame: str | None) -> None:
        if not self.accepted:
            self.accepted = True
            await self.transport.accept()
        if frame is not None:
            self.outbox.push(frame)
        if code != CLOSE_SLOW_READER:
            await self.outbox.flush(FLUSH_WAIT)

    def detach(self) -> Room | None:
        """Leave the room and the account's group; this process's other
        connections on the board are told `left` before the socket closes."""
        self.outbox.close()
        self.cursors_out.close()
        if self.viewports_out is not None:
            self.viewports_out.close()
        self.ops_room.set()  # a receive waiting for commits returns
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self.process.release_address(self.client_keys)
        self.client_keys = ()
        room, self.room = self.room, None
        if room is None:
            return None
        room.leave(self)
        if self.user_id is not None:
            self.process.unwatch_user(self.user_id, self)
        room.dispatch({"type": broadcast.LEFT, "sid": self.sid}, skip=self.sid)
        return room

    async def forget(self, room: Room | None) -> None:
        """Tell the other processes, and clear the presence row."""
        if room is None:
            return
        try:
            await room.publish({"type": broadcast.LEFT, "sid": self.sid})
            await process.leave(sid=self.sid)
        except Exception as exc:
            logger.warning(
                "Connection %s: presence not cleared (retried at the next "
                "heartbeat): %s",
                self.sid,
                exc,
            )
            self.process.leave_later(self.sid, room.slug)

    async def peer_gone(self, code: int | None = None) -> None:
        """The client closed the socket (with `code`) or the connection dropped."""
        self.gone.set()
        await self.end(None, client_code=code)

    async def fail(self) -> None:
        """An unexpected server error: close with 1011; the client reconnects."""
        await self.end(CLOSE_INTERNAL, reason="server error")

    async def unavailable(self) -> None:
        """The database could not be reached: close with 1013."""
        await self.end(CLOSE_TRY_AGAIN, reason="database unavailable")

    async def shut_down(self) -> None:
        """The server is stopping: flush this connection's ops, say bye, 1012.

        Give the client a moment to answer the close frame, so that it is on
        the wire before the event loop stops.
        """
        if self.state not in LIVE:
            await self.end(None)
            return
        if self.room is not None:
            await self.room.drain(SHUTDOWN_DRAIN)
        await self.end(CLOSE_RESTART, frames.bye(), reason="server stopping")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gone.wait(), SHUTDOWN_CLOSE_WAIT)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` beside the socket; its failure ends the connection (1011)."""
        task = asyncio.get_running_loop().create_task(self.guarded(work))
        # The loop keeps only a weak reference to a task.
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except DatabaseError as exc:
            logger.warning(
                "Connection %s on %s: database error: %s", self.sid, self.slug, exc
            )
            await self.unavailable()
        except Exception:
            logger.exception("Connection %s on %s failed", self.sid, self.slug)
            await self.fail()


# Events that end a connection are handled while its state is still being sent.
ENDING_EVENTS = frozenset(
    {broadcast.GONE, broadcast.KICK, broadcast.USER_ENDED, broadcast.RESET}
)
