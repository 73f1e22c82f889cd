"""The client side of the load generator: what runs inside one worker process.

Each worker joins its share of the clients to the board, sends their `add` ops on
an absolute schedule, reads every frame, and times each op's delivery from the
send time its cid carries (`c<token>-<client>-<n>-<time_ns>`); any process on the
machine can do that because they all read the same wall clock. Workers never block
on the parent: the barriers are shared counters that they poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import time
from typing import ClassVar

from clientstate import (
    ENTRY_FIELDS,
    WELCOME_FIELDS,
    Client,
    JoinError,
    Tally,
    add_frame,
    element_id,
    parse_cid,
)
from scenario import LoadConfig, Shared
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

POLL_S = 0.01
# Joins in flight per worker process. The scenarios are about steady load, not a
# storm of simultaneous joins: 1,000 at once queue their database work for longer
# than daphne's 5 s handshake timeout (docs/performance.md).
OPEN_CONCURRENCY = 25


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def sleep_until(deadline_ns: int) -> None:
    """Sleep to an absolute wall-clock deadline, so lateness never accumulates."""
    delay = (deadline_ns - time.time_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


async def poll(predicate) -> None:
    """Wait for a cross-process condition without blocking the event loop.

    Polling, because a multiprocessing Value or Event offers nothing to await.
    """
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(POLL_S)


class Worker:
    """The clients of one process: join, send on schedule, read, drain, report."""

    def __init__(self, cfg: LoadConfig, indices: list[int], shared: Shared) -> None:
        self.cfg = cfg
        self.shared = shared
        self.tally = Tally()
        slots = cfg.clients * cfg.ops_per_client
        self.clients = [
            Client(i, bytearray(slots), board=i % cfg.boards) for i in indices
        ]
        self.parsed: dict[str, tuple] = {}
        self.tasks: list[asyncio.Task] = []
        self.start_ns = 0

    # -- lifecycle --------------------------------------------------------------

    async def run(self) -> Tally:
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def open_one(client: Client) -> None:
            async with gate:
                await self.open(client)

        await asyncio.gather(*(open_one(c) for c in self.clients))
        live = [c for c in self.clients if c.ws is not None]
        await poll(lambda: self.shared.start_at.value != 0)
        start_ns = self.start_ns = self.shared.start_at.value
        if start_ns > 0:
            await sleep_until(start_ns)
            cpu0 = cpu_seconds()
            await asyncio.gather(*(self.send_ops(c, start_ns) for c in live))
            self.shared.add(self.shared.senders_done, len(self.clients))
            await self.drain(live)
            self.tally.cpu_s = cpu_seconds() - cpu0
        self.shared.add(self.shared.drained)
        await poll(self.shared.release.is_set)
        await self.close(live)
        return self.finish()

    async def open(self, client: Client) -> None:
        """Join the board; a client that cannot join is counted and left out."""
        try:
            await self.join(client)
        except (OSError, TimeoutError, ValueError, WebSocketException) as exc:
            client.closed = f"join failed: {type(exc).__name__}: {exc}"
            if client.ws is not None:
                await client.ws.close()
                client.closed += f" (close code {client.ws.close_code})"
                client.ws = None
            self.shared.add(self.shared.failed)
            return
        self.tasks.append(asyncio.create_task(self.read_loop(client)))
        self.tasks.append(asyncio.create_task(self.ping_loop(client)))
        self.shared.add(self.shared.connected)

    async def join(self, client: Client) -> None:
        """Connect and read `welcome` then the snapshot, as the protocol orders them."""
        client.ws = await connect(
            self.cfg.url_of(client.index),
            origin=self.cfg.origin,
            compression=None,
            max_size=None,
            ping_interval=None,
            proxy=None,
            open_timeout=self.cfg.connect_timeout,
        )
        welcome = await self.recv_json(client)
        if welcome.get("type") != "welcome":
            raise JoinError(f"first frame was {welcome!r:.200}, not welcome")
        missing = WELCOME_FIELDS.difference(welcome)
        if missing or welcome.get("protocol") != 1:
            self.tally.note(f"welcome without {sorted(missing)} or protocol 1")
        client.limits = welcome.get("limits") or {}
        client.last_seq = welcome.get("seq")
        while True:
            msg = await self.recv_json(client)
            if msg.get("type") == "snapshot":
                self.check_snapshot(client, msg)
                if not msg.get("more"):
                    return
            elif msg.get("type") == "ops":
                self.tally.note("ops frame as board state without ?since=")
                self.on_ops(client, msg, time.time_ns())
                return
            else:
                self.tally.note(f"{msg.get('type')!r} frame before the board state")

    async def recv_json(self, client: Client) -> dict:
        raw = await asyncio.wait_for(client.ws.recv(), self.cfg.connect_timeout)
        msg = json.loads(raw)
        if not isinstance(msg, dict):
            raise JoinError(f"frame is not a JSON object: {raw!r:.200}")
        return msg

    def check_snapshot(self, client: Client, msg: dict) -> None:
        if msg.get("seq") != client.last_seq:
            self.tally.note("snapshot seq differs from welcome seq")
            client.last_seq = msg.get("seq")

    async def close(self, live: list[Client]) -> None:
        for client in live:
            client.closing = True
        await asyncio.gather(*(c.ws.close() for c in live), return_exceptions=True)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def finish(self) -> Tally:
        """Fold the per-client state into the tally the parent receives."""
        union = 0
        for client in self.clients:
            union |= int.from_bytes(client.seen, "little")
            self.tally.clients.append(client.outcome())
        self.tally.union = union.to_bytes(len(self.clients[0].seen) or 1, "little")
        return self.tally

    # -- sending ----------------------------------------------------------------

    async def send_ops(self, client: Client, start_ns: int) -> None:
        """Send this client's ops on deadlines staggered across the clients."""
        period = 1e9 / self.cfg.rate
        offset = client.index / self.cfg.clients * period
        for n in range(self.cfg.ops_per_client):
            if client.closed or self.shared.release.is_set():
                break
            deadline = start_ns + int(offset + n * period)
            await sleep_until(deadline)
            now = time.time_ns()
            self.tally.send_lag.append(now - deadline)
            try:
                await client.ws.send(add_frame(self.cfg, client.index, n, now))
            except ConnectionClosed:
                break
            client.sent += 1
        self.shared.add_at(self.shared.board_sent, client.board, client.sent)
        self.shared.add(self.shared.sent, client.sent)

    async def ping_loop(self, client: Client) -> None:
        """Heartbeat as a real client does; the echoed `t` also times a round trip."""
        beat = client.limits.get("heartbeat_seconds") or self.cfg.ping_every
        interval = min(self.cfg.ping_every, beat)
        while True:
            await asyncio.sleep(interval)
            frame = json.dumps({"type": "ping", "t": time.time_ns()})
            try:
                await client.ws.send(frame)
            except ConnectionClosed:
                return

    # -- receiving --------------------------------------------------------------

    async def read_loop(self, client: Client) -> None:
        try:
            async for raw in client.ws:
                self.on_frame(client, raw, time.time_ns())
        except ConnectionClosed:
            pass
        if not client.closing:
            ws = client.ws
            client.closed = f"server closed {ws.close_code} {ws.close_reason!r}"

    def on_frame(self, client: Client, raw: str | bytes, now: int) -> None:
        if isinstance(raw, bytes):
            self.tally.note("binary frame from the server")
            return
        if raw.startswith('{"type":"ops"'):
            self.tally.frames["ops"] += 1
            self.deliver(client, self.parse_ops(raw), now)
            return
        try:
            msg = json.loads(raw)
        except ValueError:
            self.tally.note("frame that is not JSON")
            return
        kind = msg.get("type") if isinstance(msg, dict) else None
        self.tally.frames[str(kind)] += 1
        handler = self.handlers.get(kind)
        if handler is not None:
            handler(self, client, msg, now)

    def on_ops(self, client: Client, msg: dict, now: int) -> None:
        """Check seq order and time every op of this run that the frame carries."""
        for entry in msg.get("ops") or ():
            self.check_seq(client, entry.get("seq"))
            origin = parse_cid(entry.get("cid"), self.cfg.token)
            if origin is not None:
                self.check_entry(entry, origin)
                self.record_delivery(client, origin, now)

    def parse_ops(self, raw: str) -> tuple:
        """(seqs, origins, contiguous) of an `ops` frame, decoded once per process.

        Every client of a board receives the same frame text, so the generator
        decodes and checks each frame once and then only does per-client
        bookkeeping: its cost then grows with frames, not with deliveries, and
        it leaves the cores to the server.
        """
        found = self.parsed.get(raw)
        if found is None:
            if len(self.parsed) > 512:
                self.parsed.clear()
            found = self.parsed[raw] = self.decode_ops(raw)
        return found

    def decode_ops(self, raw: str) -> tuple:
        msg = json.loads(raw)
        seqs, origins = [], []
        for entry in msg.get("ops") or ():
            seq = entry.get("seq")
            seqs.append(seq if isinstance(seq, int) else None)
            origin = parse_cid(entry.get("cid"), self.cfg.token)
            if origin is not None:
                self.check_entry(entry, origin)
                origins.append(origin)
        contiguous = all(
            isinstance(a, int) and b == a + 1
            for a, b in zip(seqs, seqs[1:], strict=False)
        ) and (not seqs or isinstance(seqs[0], int))
        return seqs, origins, contiguous

    def deliver(self, client: Client, parsed: tuple, now: int) -> None:
        seqs, origins, contiguous = parsed
        if contiguous and seqs and isinstance(client.last_seq, int):
            if seqs[0] != client.last_seq + 1:
                self.check_seq(client, seqs[0])
            client.last_seq = seqs[-1]
        else:
            for seq in seqs:
                self.check_seq(client, seq)
        for origin in origins:
            self.record_delivery(client, origin, now)

    def check_seq(self, client: Client, seq: object) -> None:
        """Seqs must go up by exactly one, starting after the snapshot's seq."""
        if not isinstance(seq, int) or isinstance(seq, bool):
            client.seq_missing += 1
            self.tally.note("op entry without an integer seq")
            return
        if isinstance(client.last_seq, int):
            if seq <= client.last_seq:
                client.seq_backwards += 1
            elif seq > client.last_seq + 1:
                client.seq_gaps += 1
        client.last_seq = seq

    def check_entry(self, entry: dict, origin: tuple) -> None:
        """Our own ops must come back as the protocol's `add` entries describe."""
        missing = ENTRY_FIELDS.difference(entry)
        if missing:
            self.tally.note(f"op entry without {sorted(missing)}")
            return
        element = entry["element"]
        if entry["op"] != "add" or not isinstance(element, dict):
            self.tally.note("our add came back as something else")
        elif element.get("id") != element_id(self.cfg, origin[0], origin[1]):
            self.tally.note("our add came back with another element id")
        elif element.get("v") != entry["seq"] or "by" not in element:
            self.tally.note("added element without v equal to its seq, or by")

    def record_delivery(self, client: Client, origin: tuple, now: int) -> None:
        sender, n, sent_ns = origin
        per_client = self.cfg.ops_per_client
        if not (0 <= sender < self.cfg.clients and 0 <= n < per_client):
            self.tally.note("op with a cid this run never sent")
            return
        slot = sender * per_client + n
        if client.seen[slot]:
            client.duplicates += 1
            return
        client.seen[slot] = 1
        client.seen_count += 1
        if sender == client.index:
            self.tally.echo.append(now - sent_ns)
        else:
            self.tally.others.append(now - sent_ns)
            second = max(0, now - self.start_ns) // 1_000_000_000
            self.tally.others_at.append(min(second, 65535))
        self.tally.last_delivery = now

    def on_error(self, client: Client, msg: dict, now: int) -> None:
        self.tally.errors[str(msg.get("code"))] += 1
        if parse_cid(msg.get("cid"), self.cfg.token) is not None:
            client.refused += 1
            self.shared.add(self.shared.refused)
            self.shared.add_at(self.shared.board_refused, client.board)

    def on_pong(self, client: Client, msg: dict, now: int) -> None:
        if isinstance(msg.get("t"), int):
            self.tally.pong.append(now - msg["t"])
        else:
            self.tally.note("pong without the ping's extra field")

    handlers: ClassVar[dict] = {"ops": on_ops, "error": on_error, "pong": on_pong}

    # -- draining ---------------------------------------------------------------

    async def drain(self, live: list[Client]) -> None:
        """Wait until every client here saw every committed op, or the timeout."""
        shared = self.shared

        def settled() -> bool:
            if shared.senders_done.value < self.cfg.clients:
                return False
            committed = [
                sent - refused
                for sent, refused in zip(
                    shared.board_sent[:], shared.board_refused[:], strict=True
                )
            ]
            return all(c.closed or c.seen_count >= committed[c.board] for c in live)

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.cfg.drain):
                await poll(lambda: settled() or shared.release.is_set())


def worker_main(cfg: LoadConfig, indices: list[int], shared: Shared, conn) -> None:
    """Entry point of one worker process: run its clients, send back the tally."""
    try:
        tally = asyncio.run(Worker(cfg, indices, shared).run())
    except BaseException as exc:  # the parent must hear about any failure
        conn.send({"failed": f"{type(exc).__name__}: {exc}"})
        raise
    conn.send(tally)
    conn.close()
