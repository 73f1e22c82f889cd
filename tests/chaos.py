"""Clients for the chaos tests (tests/test_chaos.py): they record what they see.

A `Client` is one user's socket on one board, driven as the board page drives
it: it applies every `ops` entry in seq order, remembers the last seq it
applied, resumes with `?since=` after a drop, and resends the ops it sent but
never saw come back, with the same cids. While it reads it checks what the
protocol promises a client: no gap and no repeat in the seqs, no frame much
larger than the frame budget. Every op entry and ack any client sees goes into
a shared `Ledger`, which checks that a seq always names the same op.

A `NonReader` is a raw TCP client that completes the WebSocket handshake and
then never reads, with a tiny receive buffer: the slow or hostile reader the
server must cut off (4413).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import random
import socket
import struct
import time
import uuid
from collections import defaultdict

from websockets.exceptions import ConnectionClosed

MiB = 1024 * 1024
# PROTOCOL.md, "Frame size": no frame larger than about 256 KiB plus one op
# entry; the slack covers the frame's own `{"type":"ops","ops":[...]}`.
FRAME_BUDGET = 256 * 1024
FRAME_SLACK = 1024
# A client never needs a receive limit above 1 MiB (PROTOCOL.md).
CLIENT_MAX_SIZE = MiB


def stroke(element_id, points=3, x=0, seed=0):
    """A freehand stroke of `points` pairs (2 to max_points)."""
    rnd = random.Random(seed)
    pairs = [
        [round(rnd.uniform(-500, 500), 2), round(rnd.uniform(-500, 500), 2)]
        for _ in range(points)
    ]
    return {
        "id": element_id,
        "kind": "stroke",
        "x": x,
        "y": x,
        "points": pairs,
        "color": "#1e88e5",
        "width": 3,
    }


def entry_key(op):
    """What makes one op entry that op: its cid, kind and the element(s) it names."""
    target = op.get("element", {}).get("id") or op.get("id") or op.get("ids")
    return (op["cid"], op["op"], json.dumps(target))


class Ledger:
    """Every op entry and ack any client saw, checked for consistency."""

    def __init__(self):
        self.by_seq = {}  # seq -> entry_key
        self.seqs_of = defaultdict(set)  # cid -> seqs it produced
        self.acks = {}  # cid -> seq the server acked
        self.adds = defaultdict(set)  # element id -> seqs of adds
        self.problems = []

    def op(self, op):
        key = entry_key(op)
        seq = op["seq"]
        known = self.by_seq.setdefault(seq, key)
        if known != key:
            self.problems.append(f"seq {seq} seen as {known} and as {key}")
        self.seqs_of[op["cid"]].add(seq)
        if op["op"] == "add":
            self.adds[op["element"]["id"]].add(seq)

    def ack(self, cid, seq):
        self.acks[cid] = seq

    def seen_cids(self):
        return set(self.seqs_of) | set(self.acks)

    @property
    def last_seq(self):
        return max(self.by_seq, default=0)


class Refused(Exception):
    def __init__(self, code, frames):
        super().__init__(f"closed with {code} before the board arrived: {frames}")
        self.code = code
        self.frames = frames


class Client:
    """One socket at a time on one board, resuming like the board page."""

    ids = itertools.count()

    def __init__(self, name, ledger, *, headers=None, max_size=CLIENT_MAX_SIZE):
        self.name = name
        self.ledger = ledger
        self.headers = headers
        self.max_size = max_size
        self.ws = None
        self.reader = None
        self.applied = None  # the last seq applied; None before any state
        self.elements = {}
        self.target = None  # the welcome's seq, while the state arrives
        self.live = False
        self.welcome = None
        self.state_kinds = []  # per connection: "snapshot" or "ops" (a resume)
        self.pending = {}  # cid -> frame text: sent, not seen in ops or ack
        self.sent = set()  # every cid this client sent
        self.sent_at = {}  # cid -> monotonic time it was first sent
        self.resolved = {}  # own cid -> "ops" | "ack" | error code
        self.errors = []
        self.lefts = set()  # sids a `left` frame named
        self.closes = []  # close code of each socket, in order (None: dropped)
        self.problems = []
        self.frames = 0
        self.largest_frame = 0
        self.arrivals = {}  # cid -> monotonic time its first op entry arrived
        self.last_arrivals = {}  # cid -> ... and its last
        self.resent = 0  # ops sent again after a reconnect
        self.frames_of = defaultdict(int)  # cid -> ops frames holding its entries
        self.changed = asyncio.Condition()
        self.count = itertools.count()

    # -- connecting ------------------------------------------------------------

    @property
    def open(self):
        return self.reader is not None and not self.reader.done()

    async def connect(self, server, slug, *, timeout=15, resend=True):
        """Open a socket (with ?since= once a state was applied) and wait until
        the board's state has arrived; raises `Refused` if it closes first."""
        query = f"?since={self.applied}" if self.applied is not None else ""
        options = {"max_size": self.max_size}
        if self.headers:
            options["additional_headers"] = self.headers
        self.ws = await server.open(slug, query, **options)
        self.live, self.target, self.welcome = False, None, None
        self.reader = asyncio.get_running_loop().create_task(self.read(self.ws))
        got = len(self.closes)
        await self.until(lambda: self.live or len(self.closes) > got, timeout)
        if not self.live:
            raise Refused(self.closes[-1], self.errors[-3:])
        if resend:
            for text in list(self.pending.values()):
                self.resent += 1
                await self.send(text)
        return self

    async def reconnect(self, server, slug, *, attempts=20, timeout=15):
        """Reconnect with exponential backoff and jitter while the server
        answers with a retryable close (1011 is not one we accept)."""
        delay = 0.1
        for _ in range(attempts):
            try:
                return await self.connect(server, slug, timeout=timeout)
            except Refused as refused:
                if refused.code not in (1012, 1013, 4413, 4429, None):
                    raise
            except OSError:  # the port does not answer yet
                pass
            await asyncio.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 2.0)
        raise AssertionError(f"{self.name}: no reconnect after {attempts} attempts")

    async def close(self):
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await asyncio.wait_for(asyncio.shield(self.reader), 10)

    # -- reading -----------------------------------------------------------------

    async def read(self, ws):
        try:
            async for text in ws:
                self.frame(text)
                async with self.changed:
                    self.changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self.live = False
            self.closes.append(ws.close_code)
            async with self.changed:
                self.changed.notify_all()

    def frame(self, text):
        frame = json.loads(text)
        kind = frame["type"]
        self.frames += 1
        self.largest_frame = max(self.largest_frame, len(text.encode()))
        if kind == "welcome":
            self.welcome = frame
            self.target = frame["seq"]
            self.state_kinds.append(None)
        elif kind == "snapshot":
            self.snapshot(frame)
        elif kind == "ops":
            self.ops(frame, text)
        elif kind == "left":
            self.lefts.add(frame["sid"])
        elif kind == "ack":
            self.ledger.ack(frame["cid"], frame["seq"])
            self.resolve(frame["cid"], "ack")
        elif kind == "error":
            self.errors.append(frame)
            if frame.get("cid"):
                self.resolve(frame["cid"], frame["code"])

    def snapshot(self, frame):
        if self.state_kinds[-1] is None:  # the first frame of a snapshot
            self.state_kinds[-1] = "snapshot"
            self.elements = {}
        self.elements.update((e["id"], e) for e in frame["elements"])
        self.applied = frame["seq"]
        if not frame["more"]:
            self.live = True

    def ops(self, frame, text):
        if self.state_kinds and self.state_kinds[-1] is None:
            self.state_kinds[-1] = "ops"
        entries = frame["ops"]
        size = len(text.encode())
        if entries and size > FRAME_BUDGET:
            largest = max(len(json.dumps(op).encode()) for op in entries)
            if size > FRAME_BUDGET + largest + FRAME_SLACK:
                self.problems.append(
                    f"an ops frame of {len(text.encode())} bytes "
                    f"({len(entries)} entries, the largest {largest})"
                )
        now = time.monotonic()
        for cid in {op["cid"] for op in entries}:
            self.frames_of[cid] += 1
        for op in entries:
            seq = op["seq"]
            if self.applied is None or seq != self.applied + 1:
                self.problems.append(f"seq {seq} after {self.applied}")
                if self.applied is not None and seq <= self.applied:
                    continue  # a repeat: not applied twice
            self.apply(op)
            self.applied = seq
            self.ledger.op(op)
            self.arrivals.setdefault(op["cid"], now)
            self.last_arrivals[op["cid"]] = now
            self.resolve(op["cid"], "ops")
        if self.target is not None and (self.applied or 0) >= self.target:
            self.live = True

    def apply(self, op):
        kind = op["op"]
        if kind == "add":
            self.elements[op["element"]["id"]] = op["element"]
        elif kind == "delete":
            for element_id in op["ids"]:
                self.elements.pop(element_id, None)
        elif kind == "clear":
            self.elements.clear()

    def resolve(self, cid, how):
        """What became of an op this client sent (others' cids are not kept)."""
        if cid in self.sent:
            self.resolved.setdefault(cid, how)
            self.pending.pop(cid, None)

    async def until(self, predicate, timeout, what="the condition"):
        try:
            async with self.changed:
                await asyncio.wait_for(self.changed.wait_for(predicate), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: {what} not reached in {timeout} s "
                f"(applied {self.applied}, closes {self.closes}, "
                f"{len(self.pending)} pending, errors {self.errors[-3:]})"
            ) from None

    # -- writing -------------------------------------------------------------------

    def new_cid(self):
        return f"{self.name}-{next(self.count)}-{uuid.uuid4().hex[:8]}"

    async def send(self, text):
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(text)

    async def op(self, frame):
        """Send an op (a dict without cid); returns its cid, now pending."""
        cid = self.new_cid()
        text = json.dumps({**frame, "cid": cid})
        self.pending[cid] = text
        self.sent.add(cid)
        self.sent_at[cid] = time.monotonic()
        await self.send(text)
        return cid

    async def add(self, element):
        return await self.op({"type": "add", "element": element})

    def settled(self, cid):
        return cid not in self.pending or not self.open

    async def add_and_wait(self, element, timeout=10):
        """Send an add and wait until it comes back, is answered, or the
        socket closes: never silence."""
        cid = await self.add(element)
        await self.until(lambda: self.settled(cid), timeout, f"an answer to {cid}")
        return cid

    async def draw(self, *, points=3, window=1, pause=None, stop=None, timeout=10):
        """Add strokes, at most `window` unanswered at a time, until `stop` is
        set or the socket closes; `pause`, while clear, holds the pen. Each op
        must be answered (or the socket closed) within `timeout`: never silence.
        """
        n = 0
        while self.open and not (stop is not None and stop.is_set()):
            if pause is not None and not pause.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pause.wait(), 0.5)
                continue
            await self.until(
                lambda: len(self.pending) < window or not self.open,
                timeout,
                "an answer to an op",
            )
            if not self.open:
                break
            await self.add(stroke(f"{self.name}-e{next(self.ids)}", points, n))
            n += 1
        if self.open:
            await self.until(lambda: self.settled_all(), timeout, "every answer")
        return n

    def settled_all(self):
        return not self.pending or not self.open

    def ops_seen(self):
        return sum(1 for how in self.resolved.values() if how in ("ops", "ack"))


# -- a client that never reads --------------------------------------------------


# Linux's TCP states, as the first byte of struct tcp_info reports them.
TCP_ESTABLISHED = 1


class NonReader:
    """A raw WebSocket client that never reads after the handshake.

    Its receive buffer is made tiny before it connects, so the server's bytes
    pile up on the server's side. It can still send (text frames are masked,
    as a client's must be), and `tcp_state` tells, without reading, whether
    the server has closed or reset the connection.
    """

    def __init__(self, port, path, origin, rcvbuf=4096):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.opened = time.monotonic()
        self.closed_at = None
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {origin}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.data = b""
        while b"\r\n\r\n" not in self.data:
            chunk = self.sock.recv(1024)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.data += chunk
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(f"handshake refused: {head[:80]!r}")

    def send_text(self, text):
        payload = text.encode()
        assert len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    def tcp_state(self):
        info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        return info[0]

    def still_open(self):
        if self.closed_at is not None:
            return False
        if self.tcp_state() != TCP_ESTABLISHED:
            self.closed_at = time.monotonic()
            return False
        return True

    def read_rest(self, timeout=5):
        """Read what is left: (frame types, close code or None if the
        connection was reset before a close frame could be read)."""
        self.sock.settimeout(timeout)
        with contextlib.suppress(OSError):
            while chunk := self.sock.recv(65536):
                self.data += chunk
        self.sock.close()
        return parse_frames(self.data)


def parse_frames(data):
    """Server frames (unmasked) in `data`: (text frame types, close code)."""
    types, close, at = [], None, 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            (length,) = struct.unpack(">H", data[at : at + 2])
            at += 2
        elif length == 127:
            (length,) = struct.unpack(">Q", data[at : at + 8])
            at += 8
        payload = data[at : at + length]
        if len(payload) < length:
            break  # cut short by a reset
        at += length
        if opcode == 0x8 and len(payload) >= 2:
            (close,) = struct.unpack(">H", payload[:2])
        elif opcode == 0x1:
            with contextlib.suppress(ValueError, KeyError):
                types.append(json.loads(payload)["type"])
    return types, close
