"""What one connection is sent, in which order and how often.

Pure asyncio: no Django, no Channels, so each rule is tested without sockets.
"""

import asyncio
import json
import logging

from .protocol import encode

logger = logging.getLogger(__name__)

GAP_WAIT = 0.5


class OrderedOps:
    """Forwards committed batches to one client in seq order: no gap, no repeat.

    With several server processes, batches can arrive out of order; an early one
    is held back, and if the missing seqs have not arrived after `gap_wait`
    seconds (a lost or very late message) they are fetched with `fetch`.
    """

    def __init__(self, delivered, send, fetch, *, gap_wait=GAP_WAIT):
        self.delivered = delivered
        self.send = send  # async (text) -> None
        self.fetch = fetch  # async (after, upto) -> [(first, last, text)]
        self.gap_wait = gap_wait
        self.early = {}
        self.timer = None
        self.closed = False

    async def offer(self, first, last, text):
        """A batch holding seqs first..last, as an encoded `ops` frame."""
        if last <= self.delivered or self.closed:
            return
        if first > self.delivered + 1:
            self.early[first] = (first, last, text)
            self.wait_for_gap()
            return
        await self.forward(first, last, text)
        await self.forward_early()

    async def forward_early(self):
        while (queued := self.early.pop(self.delivered + 1, None)) is not None:
            await self.forward(*queued)
        self.early = {k: v for k, v in self.early.items() if v[1] > self.delivered}

    async def forward(self, first, last, text):
        if first <= self.delivered:  # overlaps what was sent: drop the repeats
            ops = [op for op in json.loads(text)["ops"] if op["seq"] > self.delivered]
            text = encode({"type": "ops", "ops": ops})
        self.delivered = last
        await self.send(text)

    def wait_for_gap(self):
        if self.timer is None:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(self.gap_wait, self.fill_gap_soon)

    def fill_gap_soon(self):
        self.timer = None
        if self.early and not self.closed:
            asyncio.get_running_loop().create_task(self.fill_gap())

    async def fill_gap(self):
        if not self.early:
            return
        for batch in await self.fetch(self.delivered, min(self.early) - 1):
            await self.offer(*batch)
        if self.early and min(self.early) > self.delivered + 1:
            # The log has nothing for the gap, which only a damaged database
            # explains; never stall the client on it.
            logger.error("seqs %d.. missing from the log", self.delivered + 1)
            await self.forward(*self.early.pop(min(self.early)))
            await self.forward_early()

    def close(self):
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()


class Coalescer:
    """Keeps the latest item per key and flushes at most once per `interval`.

    The first item after a quiet spell goes out at once; later ones wait for the
    interval to pass, and only the latest per key is sent.
    """

    def __init__(self, interval, flush):
        self.interval = interval
        self.flush = flush  # async (dict key -> item) -> None
        self.items = {}
        self.timer = None
        self.sent_at = float("-inf")
        self.closed = False

    def add(self, key, item):
        self.items[key] = item
        if self.timer is not None or self.closed:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self.sent_at + self.interval - loop.time())
        self.timer = loop.call_later(delay, self.start_flush)

    def discard(self, key):
        self.items.pop(key, None)

    def start_flush(self):
        self.timer = None
        asyncio.get_running_loop().create_task(self.run_flush())

    async def run_flush(self):
        items, self.items = self.items, {}
        if items and not self.closed:
            self.sent_at = asyncio.get_running_loop().time()
            await self.flush(items)

    def close(self):
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
