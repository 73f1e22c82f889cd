"""One board in one process: its connections, its op batches and its events.

A `Room` gathers the ops of its local connections, commits them in batches
(one transaction for every board of the process, see process.py) and hands the
committed `ops` frames to its connections in seq order. It reaches connections
only through the small `Connection` interface, so nothing here waits for a
socket: a slow reader is the connection's own business (its outbox).

Committed frames go to local connections directly and to other processes
through the channel layer; if the layer fails, nothing committed is lost:
other processes read what they missed from the database (outbox.SeqOrder).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from django.db import DatabaseError

from whiteboard import broadcast, metrics, timeline
from whiteboard.changes import OpRequest, Outcome
from whiteboard.models import board_group
from whiteboard.protocol import Limits, frames
from whiteboard.protocol.frames import OpsFrame
from whiteboard.protocol.messages import CLOSE_INTERNAL, CLOSE_TRY_AGAIN, AddOp

from .outbox import Coalescer, SeqOrder

if TYPE_CHECKING:
    from .process import Process


def failed(task: asyncio.Task[None]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


logger = logging.getLogger(__name__)

MAX_BATCH = 500
VOLATILE_INTERVAL = 0.05
# Viewports (PROTOCOL.md 1.1, follow mode) go out at most every 100 ms per board.
VIEWPORT_INTERVAL = 0.1
# Committed cids remembered per board, so that a resend is acked at once
# without taking a rate token; older ones are found in the database.
RECENT_CIDS = 10_000

Event = dict[str, Any]


class Connection(Protocol):
    """What a room needs of a connection; every call returns at once."""

    sid: str

    def on_ops(self, frame: OpsFrame) -> None:
        """A committed `ops` frame, in seq order."""

    def on_event(self, event: Event) -> None:
        """A presence, volatile or board event (broadcast.py)."""

    def on_outcome(self, request: OpRequest, outcome: Outcome) -> None:
        """What became of an op this connection submitted."""

    def abort(self, code: int) -> None:
        """End the connection with `code` soon (the room could not serve it)."""

    def tick(self, now: float) -> None:
        """Every process.TICK: heartbeat and outbox bounds."""

    def queued_bytes(self) -> int:
        """Bytes waiting for the socket: its outbox and the server's buffer."""

    def presence(self) -> dict | None:
        """Its presence row's fields once written, for services.presence_restore."""

    def you(self) -> dict:
        """How `joined` names it: sid, name, color."""

    async def shut_down(self) -> None:
        """The server is stopping: say bye and close with 1012."""


class Room:
    """The batching and delivery point of one board in this process."""

    def __init__(
        self, process: Process, board_id: int, slug: str, limits: Limits
    ) -> None:
        self.process = process
        self.board_id = board_id
        self.slug = slug
        self.group = board_group(slug)
        self.limits = limits
        self.members: dict[str, Connection] = {}
        self.order = SeqOrder(self.forward, self.fetch)
        self.pending: list[tuple[OpRequest, Connection]] = []
        self.pending_cids: Counter[str] = Counter()
        self.recent: dict[str, int] = {}
        self.task: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()
        self.idle.set()
        # Keys ("cursor", sid) and ("draft", sid): the latest of each per tick.
        self.volatile = Coalescer(VOLATILE_INTERVAL, self.flush_volatile)
        # Keyed by sid: the latest viewport of each local connection per 100 ms.
        self.viewports = Coalescer(VIEWPORT_INTERVAL, self.flush_viewports)
        self.subscribed: asyncio.Task[None] | None = None

    # -- members -------------------------------------------------------------

    def join(self, conn: Connection) -> None:
        self.members[conn.sid] = conn

    def synced(self, seq: int) -> None:
        """A member was sent the board as of `seq`; frames after it follow."""
        self.order.start(seq)

    def leave(self, conn: Connection) -> None:
        if self.members.get(conn.sid) is conn:
            del self.members[conn.sid]
        self.volatile.discard_all([("cursor", conn.sid), ("draft", conn.sid)])
        self.viewports.discard(conn.sid)
        self.process.retire_if_unused(self)

    def unused(self) -> bool:
        return not self.members and self.task is None

    async def subscribe(self) -> None:
        """This process's channel is in the board's group; callers share one wait.

        A failure (the channel layer is down) is raised to every waiting caller
        and the next caller tries again.
        """
        if self.subscribed is None or failed(self.subscribed):
            loop = asyncio.get_running_loop()
            self.subscribed = loop.create_task(self.process.subscribe(self.group))
        await asyncio.shield(self.subscribed)

    # -- ops -----------------------------------------------------------------

    def committed_seq(self, cid: str) -> int | None:
        """The last seq of a cid this process committed recently, or None."""
        return self.recent.get(cid)

    def in_flight(self, cid: str) -> bool:
        return cid in self.pending_cids

    def submit(self, request: OpRequest, conn: Connection) -> None:
        self.pending.append((request, conn))
        self.pending_cids[request.cid] += 1
        if self.task is None:
            self.idle.clear()
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        """Commit and broadcast until nothing is pending.

        No timer: the next batch is whatever arrived while the last one was
        being committed (natural group commit), so an op on a quiet board is
        committed at once and a busy board's batches grow with the load.
        """
        try:
            while self.pending:
                batch = self.pending[:MAX_BATCH]
                del self.pending[:MAX_BATCH]
                try:
                    await self.commit(batch)
                except Exception as exc:  # a bug: never leave a sender waiting
                    self.commit_failed(batch, exc)
        finally:
            self.task = None
            self.idle.set()
            self.process.retire_if_unused(self)

    async def commit(self, batch: list[tuple[OpRequest, Connection]]) -> None:
        requests = [request for request, _ in batch]
        try:
            result = await self.process.commit(self.board_id, requests, self.limits)
        except Exception as exc:
            self.commit_failed(batch, exc)
            return
        for frame in result.frames:
            self.order.offer(frame)
        for frame in result.frames:
            await self.publish(broadcast.ops_event(frame))
        count_committed(batch, result.outcomes)
        if result.frames and timeline.crossed(
            result.frames[0].first - 1, result.frames[-1].last
        ):
            self.process.checkpoint(self.board_id)
        for (request, conn), outcome in zip(batch, result.outcomes, strict=True):
            if outcome.last is not None:
                self.remember(request.cid, outcome.last)
            self.settle(request.cid)
            conn.on_outcome(request, outcome)
            if outcome.first is not None and isinstance(request.op, AddOp):
                self.forget_draft(request.author.sid, request.op.element["id"])

    def commit_failed(
        self, batch: list[tuple[OpRequest, Connection]], exc: Exception
    ) -> None:
        """The database failed: the senders reconnect and resend (same cids)."""
        unavailable = isinstance(exc, DatabaseError)
        logger.error(
            "Committing %d ops on board %s failed; closing their connections "
            "so that clients resend them",
            len(batch),
            self.slug,
            exc_info=not unavailable,
        )
        if unavailable:
            logger.error("Database error: %s", exc)
        for request, _ in batch:
            self.settle(request.cid)
        senders = {id(conn): conn for _, conn in batch}.values()
        for conn in senders:
            conn.abort(CLOSE_TRY_AGAIN if unavailable else CLOSE_INTERNAL)

    def remember(self, cid: str, seq: int) -> None:
        self.recent[cid] = seq
        if len(self.recent) > RECENT_CIDS:
            del self.recent[next(iter(self.recent))]

    def settle(self, cid: str) -> None:
        self.pending_cids[cid] -= 1
        if self.pending_cids[cid] <= 0:
            del self.pending_cids[cid]

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) until everything submitted so far is committed."""
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
        except TimeoutError:
            logger.warning("Board %s still had ops pending at shutdown", self.slug)

    # -- delivery --------------------------------------------------------------

    def forward(self, frame: OpsFrame) -> None:
        for conn in list(self.members.values()):
            conn.on_ops(frame)

    async def fetch(self, after: int, upto: int) -> list[OpsFrame]:
        return await self.process.missed_ops(self.board_id, after, upto)

    def on_ops_event(self, event: Event) -> None:
        """Ops another process committed."""
        self.order.offer(OpsFrame(event["first"], event["last"], event["text"]))

    def reset(self, event: Event) -> None:
        """The board's history was replaced: its seqs start again, and so do
        its connections (they end with bye + 1012 and resume with a snapshot)."""
        self.order.close()
        self.order = SeqOrder(self.forward, self.fetch)
        self.recent.clear()
        self.dispatch(event)

    def dispatch(self, event: Event, *, skip: str | None = None) -> None:
        for sid, conn in list(self.members.items()):
            if sid != skip:
                conn.on_event(event)

    async def announce(self, event: Event, *, sid: str) -> None:
        """A presence event of local connection `sid`: here at once, then elsewhere."""
        self.dispatch(event, skip=sid)
        await self.publish(event)

    async def publish(self, event: Event) -> bool:
        return await self.process.publish(self.group, {**event, "board": self.slug})

    # -- volatile messages ----------------------------------------------------

    def cursor(self, sid: str, x: float, y: float) -> None:
        self.volatile.add(("cursor", sid), frames.cursor_item(sid, x, y))

    def viewport(
        self,
        sid: str,
        x: float,
        y: float,
        w: float,
        h: float,
        follows: str | None = None,
    ) -> None:
        self.viewports.add(sid, frames.viewport_item(sid, x, y, w, h, follows))

    def draft(self, sid: str, element: dict | None) -> None:
        text = frames.draft(sid, element)
        self.volatile.add(("draft", sid), (element["id"] if element else None, text))

    def forget_draft(self, sid: str | None, element_id: str) -> None:
        """A committed add replaces its author's draft of the same element."""
        pending = self.volatile.items.get(("draft", sid))
        if pending is not None and pending[0] == element_id:
            self.volatile.discard(("draft", sid))

    async def flush_volatile(self, items: dict) -> None:
        event = volatile_event(items.items())
        self.dispatch(event)
        # Volatile messages may be dropped; the next movement replaces them.
        await self.publish(event)

    async def flush_viewports(self, items: dict) -> None:
        event = volatile_event((), viewports=items.items())
        self.dispatch(event)
        await self.publish(event)

    # -- retiring ----------------------------------------------------------------

    def close(self) -> None:
        self.volatile.close()
        self.viewports.close()
        self.order.close()


def count_committed(
    batch: list[tuple[OpRequest, Connection]], outcomes: list[Outcome]
) -> None:
    """whiteboard_ops_committed_total and whiteboard_broadcast_seconds, once
    the batch's frames went to this process's connections and the others."""
    now = asyncio.get_running_loop().time()
    kinds = []
    for (request, _), outcome in zip(batch, outcomes, strict=True):
        if outcome.first is not None:
            kinds.append(request.kind)
            if request.received:
                metrics.BROADCAST_SECONDS.observe(now - request.received)
    metrics.committed(kinds)


def volatile_event(
    items: Iterable[tuple[tuple[str, str], Any]],
    viewports: Iterable[tuple[str, str]] = (),
) -> Event:
    """A board's coalesced volatile messages, for its connections here and on
    the other processes: (sid, encoded item) pairs of cursors and viewports,
    (sid, frame) pairs of drafts. `viewports` is only there when it holds some
    (a process of an earlier version reads the other two and ignores it)."""
    cursors, drafts = [], []
    for (kind, sid), item in items:
        if kind == "cursor":
            cursors.append((sid, item))
        else:
            drafts.append((sid, item[1]))
    event = {"type": broadcast.VOLATILE, "cursors": cursors, "drafts": drafts}
    shown = list(viewports)
    if shown:
        event["viewports"] = shown
    return event
