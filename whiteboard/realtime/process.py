"""The realtime side of one server process: its rooms, its channel, its upkeep.

A process has one channel-layer channel and one receive loop: the channel
joins the group of every board (and every account) with a local connection,
and each event is handed to its room. Every database call of the realtime
package goes through the `database_sync_to_async` wrappers at the top.

Channel layer faults are survived: group membership is renewed every few
seconds and at once after the listener recovers, and each room compares its
seq with the database's, so an op committed while Redis was away still
reaches every connection (outbox.SeqOrder reads it from the database).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import secrets
import socket
import time
import weakref
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, TypeVar

from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import DatabaseError

from whiteboard import (
    broadcast,
    metrics,
    selectors,
    services,
    session_check,
    thumbnails,
    timeline,
)
from whiteboard.changes import OpRequest
from whiteboard.models import board_group
from whiteboard.protocol import Limits
from whiteboard.protocol.frames import OpsFrame

from .room import Connection, Event, Room, failed

if TYPE_CHECKING:
    from .session import Session

logger = logging.getLogger(__name__)

T = TypeVar("T")


def on_database(function: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """`function` in the database thread; a database error it raises is counted
    (whiteboard_database_errors_total) and raised on."""
    call = database_sync_to_async(function)

    async def counted(**kwargs: Any) -> T:
        try:
            return await call(**kwargs)
        except DatabaseError:
            metrics.database_error()
            raise

    return counted


admit = on_database(services.board_admit)
join = on_database(services.board_join)
leave = on_database(services.presence_leave)
recheck = on_database(services.connection_recheck)
touch = on_database(services.presence_touch)
restore = on_database(services.presence_restore)
# Its failures are counted by GroupCommitter.commit_part, batch by batch.
commit_boards = database_sync_to_async(services.ops_commit_boards)
# Batches with an undo or redo (a history scan, up to seconds for a big one)
# commit in a thread of their own, one at a time, while the other boards' ops
# keep committing in the database thread beside them.
HISTORY_COMMITS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-commit")
commit_history = database_sync_to_async(
    services.ops_commit_boards, thread_sensitive=False, executor=HISTORY_COMMITS
)
# In a thread of its own: a checkpoint replays up to WHITEBOARD_CHECKPOINT_OPS
# ops, which commits need not wait behind.
ensure_checkpoint = database_sync_to_async(
    timeline.ensure_checkpoint, thread_sensitive=False
)
compact_history = database_sync_to_async(timeline.compact_old, thread_sensitive=False)
snapshot_page = on_database(selectors.snapshot_page)
replay_page = on_database(selectors.replay_page)
board_seqs = on_database(selectors.board_seqs)
ended_sessions = on_database(session_check.ended_sessions)

CLOSE_WAIT = 5.0
CANCEL_AGAIN = 0.5
# Heartbeats and outbox bounds are checked this often (seconds).
TICK = 0.5
RENEW_RETRY = 0.5
# The longest a group_send may take before it counts as failed.
PUBLISH_WAIT = 5.0
# With WHITEBOARD_HISTORY_DAYS, ops older than that are dropped this often
# (seconds), the first time a minute after the process starts serving.
HISTORY_EVERY = 3600.0
HISTORY_FIRST = 60.0
# Every connection's waiting bytes go into whiteboard_send_buffer_bytes this often.
SAMPLE_BUFFERS_EVERY = 5.0
MAX_UNLEFT = 10_000
LOG_EVERY = 10.0
LOGGED_OUT = {
    "type": broadcast.USER_ENDED,
    "message": "You were logged out: log in again to open this board.",
}


def channel_layer() -> Any:
    return get_channel_layer()


class GroupCommitter:
    """Collects (board, requests) batches and commits them in one transaction.

    Batches that rooms hand in while a transaction is running wait for the
    next one, which commits them all (see services.ops_commit_boards).

    A batch with an undo or redo scans its author's history: it is committed
    aside, in a thread of its own (`commit_history`), so that the other
    boards' batches, those waiting with it and those arriving while it
    commits, do not wait for it. A room hands in one batch at a time, so a
    board's batches still commit in order.
    """

    def __init__(self) -> None:
        self.waiting: list[tuple[int, list[OpRequest], Limits, asyncio.Future]] = []
        self.task: asyncio.Task[None] | None = None
        self.aside: set[asyncio.Task[None]] = set()

    async def commit(
        self, board_id: int, requests: list[OpRequest], limits: Limits
    ) -> services.CommitResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        self.waiting.append((board_id, requests, limits, future))
        if self.task is None:
            self.task = loop.create_task(self.run())
        return await future

    async def run(self) -> None:
        try:
            while self.waiting:
                group, self.waiting = self.waiting, []
                alone = [g for g in group if services.needs_own_transaction(g[1])]
                plain = [g for g in group if g not in alone]
                for batch in alone:
                    task = asyncio.get_running_loop().create_task(
                        self.commit_part([batch], commit_history)
                    )
                    self.aside.add(task)
                    task.add_done_callback(self.aside.discard)
                if plain:
                    await self.commit_part(plain, commit_boards)
        finally:
            self.task = None

    async def commit_part(self, part: list, commit: Any) -> None:
        started = time.perf_counter()
        try:
            results = await commit(batches=[g[:3] for g in part])
        except Exception as exc:  # the whole transaction failed
            if isinstance(exc, DatabaseError):
                metrics.database_error()
            results = [exc] * len(part)
        else:
            for result in results:
                if isinstance(result, DatabaseError):
                    metrics.database_error()
        metrics.COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_OPS.observe(sum(len(g[1]) for g in part))
        for (*_, future), result in zip(part, results, strict=True):
            settle(future, result)


def connection_cap(key: str) -> int:
    if key.startswith("session:"):
        return int(settings.WHITEBOARD_MAX_CONNECTIONS_PER_SESSION)
    return int(settings.WHITEBOARD_MAX_CONNECTIONS_PER_ADDRESS)


def settle(future: asyncio.Future, result: object) -> None:
    if future.done():  # the waiting room was cancelled
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class Process:
    """The rooms of one event loop (one server process) and their upkeep."""

    def __init__(self) -> None:
        self.rooms: dict[int, Room] = {}
        self.by_slug: dict[str, Room] = {}
        self.users: defaultdict[int, set[Session]] = defaultdict(set)
        self.addresses: Counter[str] = Counter()
        self.server = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.channel: str | None = None
        self.listening: asyncio.Task[None] | None = None
        self.listener: asyncio.Task[None] | None = None
        self.groups: set[str] = set()
        self.group_tasks: dict[str, asyncio.Task[None]] = {}
        self.upkeep: asyncio.Task[None] | None = None
        self.committer = GroupCommitter()
        self.heartbeat = 20.0
        self.trouble_logged_at = float("-inf")
        self.jobs: dict[str, asyncio.Task[None]] = {}
        # board id -> the task storing its checkpoint (whiteboard/timeline.py)
        self.checkpoints: dict[int, asyncio.Task[None]] = {}
        # sid -> board slug: presence rows whose removal failed (database away).
        self.unleft: dict[str, str] = {}
        # The child process that draws thumbnails, started at its first run.
        self.thumbnail_pool: ProcessPoolExecutor | None = None

    # -- rooms ----------------------------------------------------------------

    def room(self, board_id: int, slug: str, limits: Limits) -> Room:
        room = self.rooms.get(board_id)
        if room is None:
            room = self.rooms[board_id] = Room(self, board_id, slug, limits)
            self.by_slug[slug] = room
            metrics.BOARDS_ACTIVE.inc()
        if self.upkeep is None:
            self.heartbeat = float(limits.heartbeat_seconds)
            self.upkeep = asyncio.get_running_loop().create_task(self.keep_up())
        return room

    def retire_if_unused(self, room: Room) -> None:
        """Retire a room with no connections and nothing left to commit.

        Nothing is cancelled: cancelling a pending channels_redis receive can
        lose a message meant for another board; the membership is dropped.
        """
        if not room.unused() or self.rooms.get(room.board_id) is not room:
            return
        del self.rooms[room.board_id]
        del self.by_slug[room.slug]
        metrics.BOARDS_ACTIVE.dec()
        room.close()
        self.unsubscribe(room.group)

    def connections(self) -> list[Connection]:
        return [conn for room in self.rooms.values() for conn in room.members.values()]

    # -- connection caps -------------------------------------------------------

    def take_address(self, keys: Iterable[str]) -> bool:
        """Count a connection against its address and session; False if full."""
        keys = list(keys)
        if any(self.addresses[key] >= connection_cap(key) for key in keys):
            return False
        self.addresses.update(keys)
        return True

    def release_address(self, keys: Iterable[str]) -> None:
        for key in keys:
            if key:
                self.addresses[key] -= 1
                if self.addresses[key] <= 0:
                    del self.addresses[key]

    # -- accounts ------------------------------------------------------------------

    async def watch_user(self, user_id: int, session: Session) -> None:
        self.users[user_id].add(session)
        await self.subscribe(broadcast.user_group(user_id))

    def unwatch_user(self, user_id: int, session: Session) -> None:
        sessions = self.users.get(user_id)
        if sessions is None:
            return
        sessions.discard(session)
        if not sessions:
            del self.users[user_id]
            self.unsubscribe(broadcast.user_group(user_id))

    # -- the database ----------------------------------------------------------------

    async def commit(
        self, board_id: int, requests: list[OpRequest], limits: Limits
    ) -> services.CommitResult:
        return await self.committer.commit(board_id, requests, limits)

    def checkpoint(self, board_id: int) -> None:
        """Store the board's checkpoint soon, unless one is being stored."""
        if board_id in self.checkpoints:
            return
        task = asyncio.get_running_loop().create_task(
            self.guarded_job("checkpoint", lambda: ensure_checkpoint(board_id))
        )
        self.checkpoints[board_id] = task
        task.add_done_callback(lambda _: self.checkpoints.pop(board_id, None))

    async def missed_ops(self, board_id: int, after: int, upto: int) -> list[OpsFrame]:
        """The first page of the ops after `after` (SeqOrder asks for the rest)."""
        page = await replay_page(board_id=board_id, after=after, upto=upto)
        return page.frames

    # -- the channel layer -----------------------------------------------------------

    async def subscribe(self, group: str) -> None:
        """Put this process's channel in `group`; raises if the layer is down."""
        if self.listening is None or failed(self.listening):
            self.listening = asyncio.get_running_loop().create_task(self.start())
        try:
            await asyncio.shield(self.listening)
            self.groups.add(group)
            await asyncio.shield(self.in_order(group, "add"))
        except Exception:
            metrics.layer_error("group")
            raise

    def unsubscribe(self, group: str) -> None:
        self.groups.discard(group)
        if self.channel is not None:
            task = self.in_order(group, "discard")
            task.add_done_callback(log_failure(f"Leaving group {group}", "group"))

    async def start(self) -> None:
        layer = channel_layer()
        loop = asyncio.get_running_loop()
        quiet_receive_cleanup(loop)
        self.channel = await layer.new_channel()
        self.listener = loop.create_task(self.listen(layer))

    def in_order(self, group: str, action: str) -> asyncio.Task[None]:
        """Run a membership change after the previous one for the same group."""
        previous = self.group_tasks.get(group)
        task = asyncio.get_running_loop().create_task(
            self.change_group(previous, group, action)
        )
        self.group_tasks[group] = task
        task.add_done_callback(lambda done: self.settled(group, done))
        return task

    async def change_group(
        self, previous: asyncio.Task[None] | None, group: str, action: str
    ) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        layer = channel_layer()
        if action == "add":
            await layer.group_add(group, self.channel)
        else:
            await layer.group_discard(group, self.channel)

    def settled(self, group: str, task: asyncio.Task[None]) -> None:
        if self.group_tasks.get(group) is task:
            del self.group_tasks[group]

    async def publish(self, group: str, event: Event) -> bool:
        """Send an event to a group; False (logged) if the channel layer failed.

        Every event names the process it comes from: the listener skips its
        own, which local connections were given directly. A send that hangs
        (a Redis that accepts but never answers) fails after PUBLISH_WAIT, so
        that no commit's delivery and no closing connection waits for ever.
        """
        layer = channel_layer()
        if type(layer) is InMemoryChannelLayer and self.alone_in(layer, group):
            return True
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for runs the
            # send in a Task of its own, one per event.
            async with asyncio.timeout(PUBLISH_WAIT):
                await layer.group_send(group, {**event, "origin": self.server})
        except Exception as exc:
            metrics.layer_error("send")
            # A timeout's text is empty: name it.
            self.layer_trouble(
                f"sending to {group} failed: {exc or type(exc).__name__}"
            )
            return False
        return True

    def alone_in(self, layer: InMemoryChannelLayer, group: str) -> bool:
        """Whether only this process's channel is in `group` of an in-memory
        layer. route() drops the events a process sent itself, so sending them
        there only cost the layer's scan of every group and queue (8 % of the
        server's CPU on the bench's `many` scenario); a test that listens
        beside the process still gets them."""
        return set(layer.groups.get(group, ())) <= {self.channel}

    def layer_trouble(self, what: str) -> None:
        """Log channel layer failures at most every LOG_EVERY seconds."""
        now = asyncio.get_running_loop().time()
        if now - self.trouble_logged_at >= LOG_EVERY:
            self.trouble_logged_at = now
            logger.warning("Channel layer: %s", what)

    async def listen(self, layer: Any) -> None:
        """Receive every event once and hand it to its room or account."""
        failed = False
        while True:
            try:
                event = await layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.layer_error("receive")
                self.layer_trouble(f"receiving failed: {exc}")
                failed = True
                await asyncio.sleep(0.5)
                continue
            if failed:
                failed = False
                self.run_job("recover", self.recover)
            self.route(event)

    def route(self, event: Event) -> None:
        kind = event.get("type")
        if event.get("origin") == self.server:
            return
        if kind == broadcast.USER_ENDED:
            for session in list(self.users.get(event.get("user", -1), ())):
                session.on_event(event)
            return
        room = self.by_slug.get(str(event.get("board")))
        if room is None:
            return
        if kind == broadcast.LEFT and event.get("sid") in room.members:
            # Another process reaped the row of a connection open here, while
            # our database was away: it is written again (restore_presence).
            return
        if kind == broadcast.OPS:
            room.on_ops_event(event)
        elif kind == broadcast.RESET:
            room.reset(event)
        elif kind in broadcast.HANDLERS:
            room.dispatch(event)
        else:
            logger.warning("Ignored unknown event %r", kind)

    # -- upkeep ------------------------------------------------------------------------

    async def keep_up(self) -> None:
        """Every TICK: each connection's heartbeat and outbox; every few
        seconds: group membership and the rooms' seqs; every heartbeat: presence."""
        loop = asyncio.get_running_loop()
        due = {"groups": 0.0, "seqs": 0.0, "presence": loop.time() + self.heartbeat}
        sample_at = loop.time()
        jobs = {
            "groups": self.renew_groups,
            "seqs": self.check_seqs,
            "presence": self.touch_presence,
        }
        if self.period("thumbnails") > 0:
            due["thumbnails"] = loop.time() + self.period("thumbnails")
            jobs["thumbnails"] = self.refresh_thumbnails
        if settings.WHITEBOARD_HISTORY_DAYS > 0:
            due["history"] = loop.time() + HISTORY_FIRST
            jobs["history"] = compact_history
        while True:
            await asyncio.sleep(TICK)
            now = loop.time()
            sample = now >= sample_at
            if sample:
                sample_at = now + SAMPLE_BUFFERS_EVERY
            for conn in self.connections():
                conn.tick(now)
                if sample:
                    metrics.SEND_BUFFER_BYTES.observe(conn.queued_bytes())
            for what, job in jobs.items():
                if now >= due[what]:
                    due[what] = now + self.period(what)
                    self.run_job(what, job)

    def run_job(self, what: str, job: Callable[[], Awaitable]) -> None:
        """Start an upkeep job unless its last run is still going: a Redis or
        database that hangs must never stop the heartbeat ticks above."""
        running = self.jobs.get(what)
        if running is not None and not running.done():
            return
        self.jobs[what] = asyncio.get_running_loop().create_task(
            self.guarded_job(what, job)
        )

    @staticmethod
    async def guarded_job(what: str, job: Callable[[], Awaitable]) -> None:
        try:
            await job()
        except Exception as exc:
            logger.warning("Upkeep (%s) failed: %s", what, exc)

    def period(self, what: str) -> float:
        if what == "presence":
            return self.heartbeat
        if what == "groups":
            return settings.WHITEBOARD_GROUP_REFRESH_SECONDS
        if what == "thumbnails":
            return float(settings.WHITEBOARD_THUMBNAIL_SECONDS)
        if what == "history":
            return HISTORY_EVERY
        return settings.WHITEBOARD_SEQ_CHECK_SECONDS

    async def renew_groups(self) -> None:
        """Channel layers forget members (group_expiry, or a Redis restart).

        A failed renewal is tried again every RENEW_RETRY seconds until the
        next periodic one is due: after a Redis restart the first command on
        each connection redis-py pooled before it fails ("Connection closed
        by server") although Redis is back, and waiting a whole period after
        that failure put live delivery back only 5-6 s after Redis returned.
        """
        if self.channel is None:
            return
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.period("groups")
        while True:
            try:
                for group in list(self.groups):
                    await self.in_order(group, "add")
                return
            except Exception:
                metrics.layer_error("group")
                if loop.time() + RENEW_RETRY >= give_up:
                    raise
                await asyncio.sleep(RENEW_RETRY)

    async def check_seqs(self) -> None:
        """Rooms behind the database fetch what no event brought them."""
        if not self.rooms:
            return
        seqs = await board_seqs(board_ids=list(self.rooms))
        for board_id, seq in seqs.items():
            room = self.rooms.get(board_id)
            if room is not None:
                room.order.behind(seq)

    async def refresh_thumbnails(self) -> None:
        """Render stale thumbnails in the child process: drawing is CPU work
        that would hold the GIL against this event loop."""
        if self.thumbnail_pool is None:
            self.thumbnail_pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=thumbnails.worker_setup,
                initargs=(settings.SETTINGS_MODULE,),
            )
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                self.thumbnail_pool, thumbnails.background_refresh, thumbnails.BATCH
            )
        except BrokenProcessPool:
            self.thumbnail_pool = None  # the child died: a new one next time
            raise

    async def recover(self) -> None:
        """The channel layer answers again: rejoin every group, catch up."""
        logger.info("Channel layer: receiving again; renewing group membership")
        try:
            await self.renew_groups()
            await self.check_seqs()
        except Exception as exc:
            logger.warning("Channel layer: recovery failed: %s", exc)

    def leave_later(self, sid: str, slug: str) -> None:
        """A connection ended but its presence row could not be deleted."""
        if len(self.unleft) < MAX_UNLEFT:  # beyond it, rows age out by themselves
            self.unleft[sid] = slug

    async def clear_unleft(self) -> None:
        """Delete the presence rows a failed leave left behind, and say `left`
        again: a client that joined meanwhile was listed them in its welcome
        and, told nothing more, would show them until it reloads."""
        for sid, slug in list(self.unleft.items()):
            await leave(sid=sid)
            del self.unleft[sid]
            await self.say_left(sid, slug)

    async def say_left(self, sid: str, slug: str) -> None:
        """Announce that a connection whose row is gone has left its board.

        A failed publish is tried again at the next heartbeat (clear_unleft).
        """
        event = {"type": broadcast.LEFT, "sid": sid, "board": slug}
        room = self.by_slug.get(slug)
        if room is not None:
            room.dispatch(event)
        if not await self.publish(board_group(slug), event):
            self.leave_later(sid, slug)

    async def touch_presence(self) -> None:
        """Refresh this process's presence rows; announce the stale rows of
        processes that died as `left`, and write again any of ours another
        process reaped while our database was away."""
        await self.clear_unleft()
        sids = [sid for room in self.rooms.values() for sid in room.members]
        check = await touch(
            server=self.server, sids=sids, heartbeat_seconds=self.heartbeat
        )
        await self.check_logins()
        for sid, slug in check.reaped:
            await self.say_left(sid, slug)
        if check.missing:
            await self.restore_presence(check.missing)

    async def restore_presence(self, sids: list[str]) -> None:
        """Write the rows of open connections again and say they are here.

        Only connections still open now: one that ends after this deletes its
        row after the restore, on the same database thread.
        """
        rooms = {sid: room for room in self.rooms.values() for sid in room.members}
        found: list[tuple[Room, Connection, dict]] = []
        for sid in sids:
            room = rooms.get(sid)
            conn = room.members[sid] if room is not None else None
            row = conn.presence() if conn is not None else None
            if room is not None and conn is not None and row is not None:
                found.append((room, conn, row))
        if not found:
            return
        logger.info("Presence: %d rows of open connections written again", len(found))
        rows = [row for _, _, row in found]
        written = set(
            await restore(
                server=self.server, channel_name=self.channel or "", rows=rows
            )
        )
        for room, conn, _ in found:
            if conn.sid in written:
                await room.publish({"type": broadcast.JOINED, "user": conn.you()})

    async def check_logins(self) -> None:
        """End the sockets whose login ended without its event reaching us."""
        sessions = [s for users in self.users.values() for s in users]
        pairs = {s.login for s in sessions if s.login is not None}
        if not pairs:
            return
        ended = await ended_sessions(pairs=list(pairs))
        for session in sessions:
            if session.login is not None and session.login[0] in ended:
                session.on_event(LOGGED_OUT)

    # -- stopping --------------------------------------------------------------------

    async def shut_down(self) -> None:
        """Say bye to every connection, then stop this process's tasks."""
        conns = self.connections()
        logger.info("Closing %d connections before the server stops", len(conns))
        await asyncio.gather(*(c.shut_down() for c in conns), return_exceptions=True)
        await self.close()

    async def close(self) -> None:
        """Stop every task of this process; the event loop may end after this.

        A task left pending would be finalised with the interpreter, or, in the
        tests, hold the channel layer's locks bound to a loop that is gone.
        """
        for room in self.rooms.values():
            room.close()
        await settle_tasks("group changes", list(self.group_tasks.values()))
        fixed = (self.listening, self.listener, self.upkeep)
        jobs = (*self.jobs.values(), *self.checkpoints.values())
        tasks = [t for t in (*fixed, *jobs) if t]
        await settle_tasks("receiving", tasks, cancel=True)
        await finish_layer_cleanup()
        if self.thumbnail_pool is not None:
            # A render under way finishes in the child; nothing waits for it.
            self.thumbnail_pool.shutdown(wait=False, cancel_futures=True)
            self.thumbnail_pool = None
        self.listening = self.listener = self.upkeep = None
        self.channel = None


async def finish_layer_cleanup() -> None:
    """Let channels_redis finish the cleanup of the messages it handed over.

    Each receive leaves a task that removes the message from Redis' backup
    queue and only then releases the channel's receive lock. If the event loop
    ended first, the message would come again after a restart, and in the
    tests, where every test has a loop of its own, the lock stayed held by a
    dead loop: every later receive failed ("bound to a different event loop").
    """
    wait_received = getattr(channel_layer(), "wait_received", None)
    if wait_received is None:
        return
    try:
        await asyncio.wait_for(wait_received(), CLOSE_WAIT)
    except TimeoutError:
        logger.warning("Redis cleanup after receiving did not finish in time")


def quiet_receive_cleanup(loop: asyncio.AbstractEventLoop) -> None:
    """Log a failed channels_redis receive cleanup as one line, not a traceback.

    channels_redis removes each message it handed over from Redis' backup
    queue in a task of its own that nobody awaits. When Redis goes away at
    that moment (a restart), the task fails with a ConnectionError and asyncio
    logs "Task exception was never retrieved" with two tracebacks, although
    the message was delivered. If its backup copy survives in Redis, the next
    receive puts it back and it is delivered once more, which does no harm:
    rooms take ops by seq and drop repeats, presence events are idempotent.
    Every other unhandled error still reaches the previous handler.
    """
    previous = loop.get_exception_handler()
    if getattr(previous, "quiets_receive_cleanup", False):
        return

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        task = context.get("future")
        exc = context.get("exception")
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        name = getattr(coro, "__qualname__", "")
        if name.endswith("._clean_receive_backup") and is_redis_error(exc):
            logger.warning(
                "Channel layer: a received message's backup copy was not "
                "removed from Redis (it may be delivered again): %s",
                exc,
            )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handle.quiets_receive_cleanup = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handle)


def is_redis_error(exc: object) -> bool:
    return type(exc).__module__.startswith("redis.")


async def settle_tasks(
    what: str, tasks: list[asyncio.Task[None]], *, cancel: bool = False
) -> None:
    """Wait (at most CLOSE_WAIT) for `tasks` to end; with `cancel`, cancel them,
    and again every CANCEL_AGAIN seconds while they run.

    A channels_redis receive cancelled once can go on awaiting its own
    cleanup, and never end if nothing cancels it again: the event loop's
    closing then waited for ever (seen in the tests about once in five runs of
    tests/test_session.py against Redis).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLOSE_WAIT
    pending = set(tasks)
    while pending and loop.time() < deadline:
        if cancel:
            for task in pending:
                task.cancel()
        wait = min(CANCEL_AGAIN, deadline - loop.time()) if cancel else CLOSE_WAIT
        _, pending = await asyncio.wait(pending, timeout=max(wait, 0))
    if pending:
        logger.warning("%s did not finish within %s s", what.capitalize(), CLOSE_WAIT)


def log_failure(what: str, operation: str = "") -> Callable[[asyncio.Task[None]], None]:
    def check(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            if operation:
                metrics.layer_error(operation)
            logger.warning("%s failed: %s", what, task.exception())

    return check


_processes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Process] = (
    weakref.WeakKeyDictionary()
)


def current() -> Process:
    """The process state of the running event loop (tests run one loop per test)."""
    loop = asyncio.get_running_loop()
    found = _processes.get(loop)
    if found is None:
        found = _processes[loop] = Process()
    return found


async def shut_down() -> None:
    """The server is stopping (config/daphne_compat.py calls this)."""
    await current().shut_down()
