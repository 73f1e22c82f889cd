"""What one connection is sent: ops in seq order, bounded bytes, cursors merged.

realtime/outbox.py is pure asyncio, so each rule is tested without sockets.
"""

import asyncio
import json

import pytest

from whiteboard.protocol.frames import OpsFrame
from whiteboard.realtime.outbox import (
    Coalescer,
    Outbox,
    OutboxBounds,
    SeqOrder,
    send_pages,
    start_now,
)


def batch(first, last):
    ops = [
        {"op": "delete", "seq": seq, "ids": [f"e{seq}"]}
        for seq in range(first, last + 1)
    ]
    return OpsFrame(first, last, json.dumps({"type": "ops", "ops": ops}))


def seqs(sent):
    return [op["seq"] for frame in sent for op in json.loads(frame.text)["ops"]]


class Board:
    """The room's side: what was forwarded, and a log to fetch gaps from."""

    def __init__(self):
        self.sent = []
        self.fetched = []
        self.changed = asyncio.Event()

    def forward(self, frame):
        self.sent.append(frame)
        self.changed.set()

    async def until_sent(self, count):
        async with asyncio.timeout(2):
            while len(self.sent) < count:
                self.changed.clear()
                await self.changed.wait()

    async def fetch(self, after, upto):
        self.fetched.append((after, upto))
        return [batch(after + 1, upto)] if upto > after else []


def order(board, start=0, **options):
    ordered = SeqOrder(board.forward, board.fetch, **options)
    ordered.start(start)
    return ordered


async def test_batches_in_order_are_forwarded_as_they_come():
    board = Board()
    ops = order(board)
    ops.offer(batch(1, 3))
    ops.offer(batch(4, 4))
    assert seqs(board.sent) == [1, 2, 3, 4]
    ops.close()


async def test_an_early_batch_waits_for_the_one_before_it():
    board = Board()
    ops = order(board, gap_wait=60)
    ops.offer(batch(4, 5))
    assert board.sent == []
    ops.offer(batch(1, 3))
    assert seqs(board.sent) == [1, 2, 3, 4, 5]
    ops.close()


async def test_repeats_and_what_the_snapshot_held_are_dropped():
    board = Board()
    ops = order(board, 3)
    ops.offer(batch(1, 3))
    ops.offer(batch(2, 5))
    ops.offer(batch(4, 5))
    assert seqs(board.sent) == [4, 5]
    ops.close()


async def test_frames_before_the_first_state_wait_for_its_seq():
    board = Board()
    ops = SeqOrder(board.forward, board.fetch, gap_wait=60)
    ops.offer(batch(1, 2))
    ops.offer(batch(3, 4))
    assert board.sent == []
    ops.start(2)
    assert seqs(board.sent) == [3, 4]
    ops.close()


async def test_a_missing_batch_is_fetched_when_it_does_not_arrive():
    board = Board()
    ops = order(board, gap_wait=0.01)
    ops.offer(batch(3, 4))
    await board.until_sent(2)
    assert board.fetched == [(0, 2)]
    assert seqs(board.sent) == [1, 2, 3, 4]
    ops.close()


async def test_seqs_no_event_brought_are_fetched_when_the_database_is_ahead():
    board = Board()
    ops = order(board, 2)
    ops.behind(5)
    await board.until_sent(1)
    assert board.fetched == [(2, 5)]
    assert seqs(board.sent) == [3, 4, 5]
    ops.close()


async def test_early_frames_past_their_bound_are_dropped_and_fetched_again():
    board = Board()
    ops = order(board, gap_wait=0.01, max_early=1)
    ops.offer(batch(3, 3))  # too big to hold: dropped, the log has it
    ops.behind(3)
    await board.until_sent(1)
    assert seqs(board.sent) == [1, 2, 3]
    ops.close()


class Socket:
    """A server socket whose buffer fills until the reader reads."""

    def __init__(self):
        self.buffer = 0
        self.texts = []
        self.reading = False
        self.failures = 0

    def failed(self):
        self.failures += 1

    async def write(self, text):
        self.texts.append(text)
        if not self.reading:
            self.buffer += len(text)

    def buffered(self):
        return self.buffer


def outbox(socket, overflows, **bounds):
    limits = OutboxBounds(**{"max_bytes": 1000, "high_water": 100, **bounds})
    return Outbox(
        socket.write, socket.buffered, limits, overflows.append, socket.failed
    )


async def test_frames_are_handed_over_only_while_the_socket_drains():
    socket, overflows = Socket(), []
    box = outbox(socket, overflows)
    for n in range(5):
        box.push("x" * 60 + str(n))
    await asyncio.sleep(0)
    assert len(socket.texts) == 2  # then the server's buffer is over 100 bytes
    assert box.pending() == 5 * 61
    socket.buffer, socket.reading = 0, True  # the client reads everything
    await box.flush(1)
    assert [text[-1] for text in socket.texts] == list("01234")
    assert overflows == []


async def test_a_frame_for_an_idle_socket_is_handed_over_before_push_returns():
    socket, overflows = Socket(), []
    box = outbox(socket, overflows)
    box.push("ack-1")
    box.push("ack-2")
    assert socket.texts == ["ack-1", "ack-2"]  # no task, no loop turn
    assert box.writer is None


class WaitingSocket(Socket):
    """A server whose send waits (a loop turn, or a future) before writing."""

    def __init__(self):
        super().__init__()
        self.gate = None

    async def write(self, text):
        if self.gate is not None:
            await self.gate
        await asyncio.sleep(0)  # the send itself yields once, as such servers do
        await super().write(text)


async def test_frames_keep_their_order_when_the_servers_send_waits():
    socket, overflows = WaitingSocket(), []
    socket.reading = True
    socket.gate = asyncio.get_running_loop().create_future()
    box = outbox(socket, overflows)
    for n in range(5):
        box.push(f"frame-{n}")
    assert socket.texts == [] and box.writer is not None
    socket.gate.set_result(None)
    await box.flush(1)
    assert socket.texts == [f"frame-{n}" for n in range(5)]
    box.push("frame-5")
    await box.flush(1)
    assert socket.texts[-1] == "frame-5"


@pytest.mark.parametrize("turns", [0, 1])
async def test_a_drain_waiting_on_the_server_can_be_cancelled(turns):
    socket, overflows = WaitingSocket(), []
    socket.gate = asyncio.get_running_loop().create_future()
    box = outbox(socket, overflows)
    box.push("never")
    writer = box.writer
    assert writer is not None
    # asyncio runs a new Task's first step on the loop's next turn: after one
    # yield here the writer is waiting on the gate; with none it has not started.
    for _ in range(turns):
        await asyncio.sleep(0)
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    # The cancellation reached the send itself, as `await` would have it.
    assert socket.gate.cancelled() == bool(turns)
    assert box.writer is None and not box.draining
    socket.gate = None
    box.push("after")  # a later frame starts a new drain
    await box.flush(1)
    assert socket.texts == ["after"]


async def test_a_send_that_raises_ends_the_outbox_once():
    class Broken(Socket):
        async def write(self, text):
            raise RuntimeError("server bug")

    socket, overflows = Broken(), []
    box = outbox(socket, overflows)
    box.push("a")
    box.push("b")
    assert socket.failures == 1
    assert box.closed and box.pending() == 0


async def test_more_than_the_bound_waiting_breaks_the_connection_once():
    socket, overflows = Socket(), []
    box = outbox(socket, overflows)
    for _ in range(30):
        box.push("x" * 50)
    assert len(overflows) == 1
    assert box.pending() == socket.buffer  # what was queued here is dropped
    box.push("more")
    assert box.queued == 0


async def test_cursors_are_dropped_while_the_socket_lags():
    socket, overflows = Socket(), []
    box = outbox(socket, overflows, volatile_lag=10)
    assert box.push_volatile("cursor-1")
    await box.flush(1)
    socket.buffer = 50
    assert not box.push_volatile("cursor-2")
    assert socket.texts == ["cursor-1"]


async def test_a_socket_that_reads_nothing_is_cut_off_after_the_stall_time():
    socket, overflows = Socket(), []
    box = outbox(socket, overflows, stall_seconds=0.05)
    box.push("x" * 200)
    await box.flush(1)
    box.check_progress()
    assert overflows == []
    await asyncio.sleep(0.06)
    box.push("pong")  # what the client sends does not count as progress
    box.check_progress()
    assert len(overflows) == 1


async def test_a_slow_reader_that_keeps_reading_stays():
    socket, overflows = Socket(), []
    box = outbox(socket, overflows, stall_seconds=0.05)
    box.push("x" * 200)
    await box.flush(1)
    for _ in range(4):
        await asyncio.sleep(0.03)
        socket.buffer -= 40  # a little is read each time
        box.check_progress()
    assert overflows == []


class CountingSocket(Socket):
    """A Socket that counts how often its buffer is looked at."""

    def __init__(self):
        super().__init__()
        self.looks = 0

    def buffered(self):
        self.looks += 1
        return self.buffer


async def test_the_tick_leaves_a_settled_socket_alone_and_watches_a_stalled_one():
    socket, overflows = CountingSocket(), []
    box = outbox(socket, overflows, stall_seconds=5)
    now = asyncio.get_running_loop().time()
    socket.reading = True
    box.push("x" * 200)
    await box.flush(1)
    box.tick(now)  # handed over, not yet seen written: one look
    assert socket.looks and overflows == []
    looks = socket.looks
    for second in range(1, 60):  # an idle socket: no look at all
        box.tick(now + second)
    assert socket.looks == looks and overflows == []
    socket.reading = False
    box.push("y" * 200)  # now it stops reading
    await box.flush(1)
    box.tick(now + 60)
    box.tick(now + 64)
    assert overflows == []
    box.tick(now + 66)  # nothing written for more than 5 s
    assert overflows == ["nothing read for 5 s"]


async def test_the_tick_keeps_watching_a_socket_with_frames_queued():
    socket, overflows = CountingSocket(), []
    box = outbox(socket, overflows, stall_seconds=5)
    now = asyncio.get_running_loop().time()
    for n in range(3):  # the third is over the high-water mark: it stays queued
        box.push("z" * 90 + str(n))
    assert box.queued
    box.tick(now + 1)
    box.tick(now + 7)
    assert overflows == ["nothing read for 5 s"]


class Pages:
    """Three pages of state whose reads each wait until the test lets them end."""

    pages = {
        None: ([f"a{n}" + "." * 58 for n in range(4)], 1),
        1: ([f"b{n}" + "." * 58 for n in range(4)], 2),
        2: (["c0" + "." * 58], None),
    }

    def __init__(self):
        self.reads = []
        self.dropped = []
        self.gone = asyncio.Event()
        self.started = {cursor: asyncio.Event() for cursor in self.pages}
        self.gates = {cursor: asyncio.Event() for cursor in self.pages}
        self.gates[None].set()

    async def read(self, cursor):
        self.reads.append(cursor)
        self.started[cursor].set()
        try:
            await self.gates[cursor].wait()
        except asyncio.CancelledError:
            self.dropped.append(cursor)
            self.gone.set()
            raise
        return self.pages[cursor]

    def frames(self):
        return [text for texts, _ in self.pages.values() for text in texts]


async def test_the_next_page_is_read_while_this_one_is_written():
    socket, overflows, pages = Socket(), [], Pages()
    box = outbox(socket, overflows)
    sending = asyncio.create_task(send_pages(box, pages.read, None, going=lambda: True))
    await asyncio.wait_for(pages.started[1].wait(), 2)
    assert socket.texts == pages.frames()[:2]  # the rest of page 1 waits for room
    socket.reading, socket.buffer = True, 0  # the client reads
    for gate in pages.gates.values():
        gate.set()
    assert await asyncio.wait_for(sending, 2)
    assert socket.texts == pages.frames()
    assert pages.reads == [None, 1, 2] and pages.dropped == []


async def test_a_socket_that_lags_loses_the_page_read_ahead_and_gets_it_later():
    socket, overflows, pages = Socket(), [], Pages()
    box = outbox(socket, overflows)
    sending = asyncio.create_task(
        send_pages(box, pages.read, None, going=lambda: True, patience=0.05)
    )
    await asyncio.wait_for(pages.started[1].wait(), 2)
    # The client reads nothing: after the patience, the read ahead is given up.
    await asyncio.wait_for(pages.gone.wait(), 2)
    assert pages.dropped == [1] and socket.texts == pages.frames()[:2]
    socket.reading, socket.buffer = True, 0  # it reads again
    for gate in pages.gates.values():
        gate.set()
    assert await asyncio.wait_for(sending, 2)
    assert socket.texts == pages.frames()  # every frame once, in order
    assert pages.reads == [None, 1, 1, 2]
    assert overflows == []


async def test_pages_stop_when_the_connection_stops_syncing():
    socket, overflows, pages = Socket(), [], Pages()
    socket.reading = True
    box = outbox(socket, overflows)
    going = [True, False]
    for gate in pages.gates.values():
        gate.set()
    sent = await send_pages(box, pages.read, None, going=lambda: going.pop(0))
    assert sent and socket.texts == pages.frames()[:4]
    assert pages.reads == [None]  # the page it would have read next is not read


async def test_the_first_item_goes_out_at_once_and_later_ones_are_merged():
    flushed = []
    arrived = asyncio.Event()

    async def flush(items):
        flushed.append(dict(items))
        arrived.set()

    coalescer = Coalescer(0.05, flush)
    coalescer.add("a", 1)
    await asyncio.wait_for(arrived.wait(), 1)
    arrived.clear()
    coalescer.add("a", 2)
    coalescer.add("b", 1)
    coalescer.add("a", 3)
    await asyncio.wait_for(arrived.wait(), 1)
    assert flushed == [{"a": 1}, {"a": 3, "b": 1}]
    coalescer.close()


async def test_flushes_are_at_least_the_interval_apart():
    loop = asyncio.get_running_loop()
    stamps = []
    flushed = asyncio.Event()

    async def flush(items):
        stamps.append(loop.time())
        flushed.set()

    coalescer = Coalescer(0.05, flush)
    for n in range(3):
        flushed.clear()
        coalescer.add("a", n)
        await asyncio.wait_for(flushed.wait(), 1)
    gaps = [later - earlier for earlier, later in zip(stamps, stamps[1:], strict=False)]
    # The timer guarantees the spacing; this is behaviour, not speed.
    assert all(gap >= 0.049 for gap in gaps), gaps
    coalescer.close()


async def test_a_flag_wakes_every_waiter_and_a_cancelled_one_leaves_the_rest():
    from whiteboard.realtime.session import Flag

    flag = Flag(True)
    await asyncio.wait_for(flag.wait(), 1)  # set: no wait
    flag.clear()
    # start_now runs each wait up to the point where it waits for the flag.
    first, second, third = (start_now(flag.wait()) for _ in range(3))
    assert first and second and third  # all three are waiting
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert not second.done() and not third.done()
    flag.set()
    await asyncio.wait_for(asyncio.gather(second, third), 1)
    assert flag.is_set() and first.cancelled()
    flag.clear()
    again = start_now(flag.wait())
    assert again is not None  # cleared: waits for the next set
    flag.set()
    await asyncio.wait_for(again, 1)
