"""What one connection is sent: ops in seq order, cursors at most every 50 ms."""

import asyncio
import json

from whiteboard.delivery import Coalescer, OrderedOps


def batch(first, last):
    ops = [
        {"op": "delete", "seq": seq, "ids": [f"e{seq}"]}
        for seq in range(first, last + 1)
    ]
    return first, last, json.dumps({"type": "ops", "ops": ops})


def seqs(sent):
    return [op["seq"] for text in sent for op in json.loads(text)["ops"]]


class Outbox:
    def __init__(self):
        self.sent = []
        self.fetched = []
        self.changed = asyncio.Event()

    async def send(self, text):
        self.sent.append(text)
        self.changed.set()

    async def until_sent(self, count):
        async with asyncio.timeout(2):
            while len(self.sent) < count:
                self.changed.clear()
                await self.changed.wait()

    async def fetch(self, after, upto):
        self.fetched.append((after, upto))
        return [batch(after + 1, upto)] if upto > after else []


async def test_batches_in_order_are_forwarded_as_they_come():
    out = Outbox()
    ops = OrderedOps(0, out.send, out.fetch)
    await ops.offer(*batch(1, 3))
    await ops.offer(*batch(4, 4))
    assert seqs(out.sent) == [1, 2, 3, 4]


async def test_an_early_batch_waits_for_the_one_before_it():
    out = Outbox()
    ops = OrderedOps(0, out.send, out.fetch, gap_wait=60)
    await ops.offer(*batch(4, 5))
    assert out.sent == []
    await ops.offer(*batch(1, 3))
    assert seqs(out.sent) == [1, 2, 3, 4, 5]
    ops.close()


async def test_repeats_and_what_the_snapshot_held_are_dropped():
    out = Outbox()
    ops = OrderedOps(3, out.send, out.fetch)
    await ops.offer(*batch(1, 3))
    await ops.offer(*batch(2, 5))
    await ops.offer(*batch(4, 5))
    assert seqs(out.sent) == [4, 5]


async def test_a_missing_batch_is_fetched_when_it_does_not_arrive():
    out = Outbox()
    ops = OrderedOps(0, out.send, out.fetch, gap_wait=0.01)
    await ops.offer(*batch(3, 4))
    await out.until_sent(2)
    assert out.fetched == [(0, 2)]
    assert seqs(out.sent) == [1, 2, 3, 4]


async def test_a_closed_connection_is_sent_nothing_more():
    out = Outbox()
    ops = OrderedOps(0, out.send, out.fetch, gap_wait=0.01)
    await ops.offer(*batch(2, 2))
    ops.close()
    await ops.offer(*batch(1, 1))
    assert out.sent == []


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
