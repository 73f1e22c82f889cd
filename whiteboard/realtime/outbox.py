"""What one connection is sent, and in which order: pure asyncio, no Django.

`Outbox` is a connection's bounded send queue: frames are handed to the server
in order, never faster than the socket drains, and a client that does not read
is cut off (4413) instead of pinning memory. `send_pages` feeds it a joining
client's state, reading the next page while one is written. `SeqOrder` puts
one board's committed `ops` frames in seq order for every connection of a
process, filling gaps from the database. `Coalescer` keeps the latest volatile
item per key and flushes at most once per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from whiteboard.protocol import frames
from whiteboard.protocol.frames import OpsFrame, size

logger = logging.getLogger(__name__)

# A connection over its high-water mark looks for drained bytes after 1 ms, then
# twice as long each time, up to 20 ms: a socket that drains at once (a late
# joiner on loopback reading a snapshot) waits about a millisecond per look, a
# slow reader costs at most 50 looks a second.
DRAIN_POLL_FIRST = 0.001
DRAIN_POLL = 0.02


@dataclass(frozen=True)
class OutboxBounds:
    """The bounds of one connection's outgoing bytes (see docs/deploy.md)."""

    # Queued here plus buffered by the server, past which the connection ends.
    max_bytes: int = 4 * 1024 * 1024
    # Frames wait here while the server's buffer for the socket holds more.
    high_water: int = 512 * 1024
    # Cursors and drafts are dropped while more than this is waiting.
    volatile_lag: int = 64 * 1024
    # No byte written to the socket for this long while some wait: 4413.
    stall_seconds: float = 10.0


Write = Callable[[str], Awaitable[None]]
Buffered = Callable[[], int]


def start_now(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run `coro` at once up to its first wait; a Task carries on from there.

    What Python 3.12's eager tasks do, for one coroutine: handing a frame to
    daphne never waits (it writes to Twisted's transport buffer), so an
    outbox's frames go out without a Task per frame; with a server whose send
    does wait, the rest runs in a Task as usual. None if `coro` finished.
    """
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(Resumed(coro, waiting))


class Resumed(Coroutine[Any, Any, None]):
    """A coroutine already started and waiting for `waiting`, in a form a Task
    can run from that point: the first step yields `waiting` again, every later
    send, throw (a cancellation) and close goes to the coroutine itself."""

    def __init__(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        self.coro = coro
        self.first: list[Any] = [waiting]

    def send(self, value: Any) -> Any:
        if self.first:
            return self.first.pop()
        return self.coro.send(value)

    def throw(self, *exc: Any) -> Any:
        self.first.clear()
        return self.coro.throw(*exc)

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, Any, None]:
        return self

    def __iter__(self) -> Resumed:
        return self

    def __next__(self) -> Any:
        return self.send(None)


class Outbox:
    """The frames waiting for one socket, bounded in bytes and in time.

    `buffered()` reports the bytes the server (daphne's transport) holds for
    the socket but has not written to it yet; frames are handed over only
    while that is under the high-water mark, so what waits is counted here.
    `overflow(reason)` is called once when the bounds are broken, `failed()`
    once if `write` raises (a server bug: nothing more is sent).

    A frame pushed while nothing waits is handed to the server at once, in
    the caller's step (`start_now`); frames wait in the queue only behind a
    full server buffer.
    """

    def __init__(
        self,
        write: Write,
        buffered: Buffered,
        bounds: OutboxBounds,
        overflow: Callable[[str], None],
        failed: Callable[[], None],
    ) -> None:
        self.write = write
        self.buffered = buffered
        self.bounds = bounds
        self.overflow = overflow
        self.failed = failed
        self.queue: deque[str] = deque()
        self.queued = 0
        self.draining = False
        self.writer: asyncio.Task[None] | None = None  # a drain that had to wait
        self.closed = False
        self.broken = False
        self.handed = 0  # bytes given to the server so far
        self.written_mark = 0  # most bytes known written to the socket
        self.progress_at = asyncio.get_running_loop().time()

    # -- putting frames in -----------------------------------------------------

    def push(self, text: str) -> None:
        """Queue a frame that must arrive (ops, answers, presence)."""
        if self.closed:
            return
        self.queue.append(text)
        self.queued += size(text)
        if self.pending() > self.bounds.max_bytes:
            self.break_bounds(f"more than {self.bounds.max_bytes} bytes waiting")
            return
        if not self.draining:
            self.writer = start_now(self.drain())

    def push_volatile(self, text: str) -> bool:
        """Queue a cursor or draft frame unless the socket lags; False if dropped."""
        if self.closed or self.pending() > self.bounds.volatile_lag:
            return False
        self.push(text)
        return True

    def pending(self) -> int:
        """Bytes not yet written to the socket: queued here or in the server."""
        return self.queued + self.buffered()

    def lagging(self) -> bool:
        return self.pending() > self.bounds.high_water

    # -- handing frames to the server ----------------------------------------

    async def drain(self) -> None:
        self.draining = True
        try:
            while self.queue and not self.closed:
                if self.buffered() > self.bounds.high_water:
                    await self.wait(self.buffered)
                    continue
                text = self.queue.popleft()
                cost = size(text)
                self.queued -= cost
                self.handed += cost
                await self.write(text)
        except Exception:
            logger.exception("Handing a frame to the server failed")
            self.close()
            self.failed()
        finally:
            self.draining = False
            self.writer = None

    async def wait_for_room(self) -> None:
        """Wait until less than the high-water mark waits for this socket.

        A large snapshot is produced frame by frame this way, as the socket
        drains, instead of being queued whole.
        """
        await self.wait(self.pending)

    async def room_within(self, timeout: float) -> bool:
        """Wait up to `timeout` for room (see `wait_for_room`); whether there is."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.wait_for_room()
        return self.closed or not self.lagging()

    async def wait(self, measure: Buffered) -> None:
        delay = DRAIN_POLL_FIRST
        while not self.closed and measure() > self.bounds.high_water:
            self.check_progress()
            await asyncio.sleep(delay)
            delay = min(2 * delay, DRAIN_POLL)

    async def flush(self, timeout: float) -> None:
        """Wait (bounded) until every queued frame is handed to the server."""
        writer = self.writer
        if writer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), timeout)

    # -- the bounds -------------------------------------------------------------

    def tick(self, now: float) -> None:
        """The upkeep's look at the bounds, every tick of every connection.

        A settled socket (nothing queued here, every byte handed over already
        seen written) is making all the progress it can: that needs no look
        at the server's buffer, which is most of the cost of a tick over
        thousands of idle connections.
        """
        if not self.queued and self.handed <= self.written_mark:
            self.progress_at = now
            return
        self.check_progress(now)

    def check_progress(self, now: float | None = None) -> None:
        """Cut off a socket that has written nothing for `stall_seconds` while
        bytes wait for it; pings it sends meanwhile do not keep it open."""
        if now is None:
            now = asyncio.get_running_loop().time()
        buffered = self.buffered()
        written = self.handed - buffered
        if written > self.written_mark or self.queued + buffered == 0:
            self.written_mark = max(written, self.written_mark)
            self.progress_at = now
        elif now - self.progress_at > self.bounds.stall_seconds:
            self.break_bounds(f"nothing read for {self.bounds.stall_seconds:g} s")

    def break_bounds(self, reason: str) -> None:
        if not self.broken:
            self.broken = True
            self.close()
            self.overflow(reason)

    def close(self) -> None:
        """Send nothing more; what is queued is dropped."""
        self.closed = True
        self.queue.clear()
        self.queued = 0


# A page of state: its frames, and where the next page starts (None: the last).
Page = tuple[list[str], int | None]
ReadPage = Callable[[int | None], Awaitable[Page]]

# How long a joining socket may lag before the page read ahead for it is dropped.
READ_AHEAD_PATIENCE = 0.1


async def send_pages(
    outbox: Outbox,
    read: ReadPage,
    start: int | None,
    *,
    going: Callable[[], bool],
    patience: float = READ_AHEAD_PATIENCE,
) -> bool:
    """Send the pages of state from `start` on, while `going()`, as the socket
    drains; whether any frame was sent.

    The next page is read while this one is written, as long as the socket
    keeps up: a late joiner's snapshot is read and sent at once, not one
    after the other. A socket that lags for `patience` loses the page read
    ahead for it (it is read again when it is due), so that a client that does
    not read holds one page here, not two.
    """
    sent = False
    ahead: asyncio.Future[Page] | None = None
    cursor = start
    try:
        while going():
            if ahead is None:
                texts, cursor = await read(cursor)
            else:
                texts, cursor = await ahead
                ahead = None
            if cursor is not None and not outbox.lagging():
                ahead = asyncio.ensure_future(read(cursor))
            for text in texts:
                if ahead is not None and not await outbox.room_within(patience):
                    _drop(ahead)
                    ahead = None
                await outbox.wait_for_room()
                outbox.push(text)
            sent = sent or bool(texts)
            if cursor is None:
                break
    finally:
        if ahead is not None:  # the connection ended meanwhile
            _drop(ahead)
    return sent


def _drop(future: asyncio.Future[Any]) -> None:
    """Give up a read no one will wait for (its outcome is retrieved, unlogged)."""
    future.cancel()
    future.add_done_callback(_forget)


def _forget(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


Fetch = Callable[[int, int], Awaitable[list[OpsFrame]]]
Forward = Callable[[OpsFrame], None]


class SeqOrder:
    """One board's `ops` frames, forwarded strictly in seq order: no gap, no repeat.

    Frames come from this process's commits and, through the channel layer,
    from other processes, in any order; one that arrives early is held back,
    and seqs still missing after `gap_wait` seconds (a lost event, a channel
    layer outage) are read from the database with `fetch(after, upto)`. Early
    frames are bounded: past `max_early` bytes they are dropped, since the
    database can give them again.
    """

    def __init__(
        self,
        forward: Forward,
        fetch: Fetch,
        *,
        gap_wait: float = 0.5,
        max_early: int = 16 * 1024 * 1024,
    ) -> None:
        self.forward = forward
        self.fetch = fetch
        self.gap_wait = gap_wait
        self.max_early = max_early
        self.delivered: int | None = None
        self.early: dict[int, OpsFrame] = {}
        self.early_bytes = 0
        self.filling: asyncio.Task[None] | None = None
        self.wanted = 0  # the highest seq known committed

    def start(self, seq: int) -> None:
        """Seqs up to `seq` are in the state the first connection was sent."""
        if self.delivered is None:
            self.delivered = seq
            self.wanted = max(self.wanted, seq)
            self.release()

    def offer(self, frame: OpsFrame) -> None:
        self.wanted = max(self.wanted, frame.last)
        if self.delivered is not None and frame.last <= self.delivered:
            return
        if frame.first not in self.early:
            self.early_bytes += size(frame.text)
        self.early[frame.first] = frame
        if self.early_bytes > self.max_early:
            self.early.clear()
            self.early_bytes = 0
        self.release()

    def behind(self, seq: int) -> None:
        """The database says the board is at `seq`: fetch what did not arrive."""
        self.wanted = max(self.wanted, seq)
        if self.delivered is not None and seq > self.delivered:
            self.fill_soon(0)

    def release(self) -> None:
        if self.delivered is None:
            return
        while self.early:
            first = min(self.early)
            frame = self.early[first]
            if frame.last <= self.delivered:
                self.drop(first)
            elif first <= self.delivered + 1:
                self.drop(first)
                self.send(frame)
            else:
                self.fill_soon(self.gap_wait)
                return

    def drop(self, first: int) -> None:
        self.early_bytes -= size(self.early.pop(first).text)

    def send(self, frame: OpsFrame) -> None:
        assert self.delivered is not None
        if frame.first <= self.delivered:
            frame = trimmed(frame, self.delivered)
        self.delivered = frame.last
        self.forward(frame)

    def fill_soon(self, delay: float) -> None:
        if self.filling is None or self.filling.done():
            loop = asyncio.get_running_loop()
            self.filling = loop.create_task(self.fill(delay))

    async def fill(self, delay: float) -> None:
        await asyncio.sleep(delay)
        while self.delivered is not None:
            upto = min(self.early) - 1 if self.early else self.wanted
            if upto <= self.delivered:
                return
            try:
                found = await self.fetch(self.delivered, upto)
            except Exception:
                logger.warning("Reading missed ops failed; retrying", exc_info=True)
                await asyncio.sleep(1)
                continue
            before = self.delivered
            for frame in found:
                if frame.last > self.delivered:
                    self.send(frame)
            if self.delivered == before:
                # The log has nothing for the gap, which only a damaged or
                # restored database explains; never stall the board on it.
                logger.error("seqs %d..%d missing from the log", before + 1, upto)
                self.delivered = upto
            self.release()

    def close(self) -> None:
        if self.filling is not None:
            self.filling.cancel()
        self.early.clear()


def trimmed(frame: OpsFrame, delivered: int) -> OpsFrame:
    """The part of a frame after seq `delivered`."""
    ops = [op for op in orjson.loads(frame.text)["ops"] if op["seq"] > delivered]
    return OpsFrame(delivered + 1, frame.last, frames.ops_of(ops))


class Coalescer:
    """Keeps the latest item per key and flushes at most once per `interval`.

    The first item after a quiet spell goes out at once; later ones wait for the
    interval to pass, and only the latest per key is sent.
    """

    def __init__(
        self, interval: float, flush: Callable[[dict], Awaitable[None]]
    ) -> None:
        self.interval = interval
        self.flush = flush
        self.items: dict = {}
        self.timer: asyncio.TimerHandle | None = None
        self.sent_at = float("-inf")
        self.closed = False
        self.tasks: set[asyncio.Task[None]] = set()

    def add(self, key: object, item: object) -> None:
        self.items[key] = item
        if self.timer is not None or self.closed:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self.sent_at + self.interval - loop.time())
        self.timer = loop.call_later(delay, self.start_flush)

    def discard(self, key: object) -> None:
        self.items.pop(key, None)

    def discard_all(self, keys: Iterable[object]) -> None:
        for key in keys:
            self.items.pop(key, None)

    def start_flush(self) -> None:
        self.timer = None
        task = asyncio.get_running_loop().create_task(self.run_flush())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run_flush(self) -> None:
        items, self.items = self.items, {}
        if items and not self.closed:
            self.sent_at = asyncio.get_running_loop().time()
            await self.flush(items)

    def close(self) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
