"""The baseline: the same fan-out on the bare `websockets` library.

What a board server costs when everything but the fan-out is taken away: no
Django, no Channels, no database, no validation. It speaks enough of protocol v1
for the load generator (welcome, snapshot frames, `add` ops echoed to everyone
on the board in `ops` frames with per-board seqs, pong) and batches exactly as
the real room does: an op on a quiet board goes out at once, then at most one
`ops` frame per board per 25 ms tick, encoded once and written to every member.
The bench runs every scenario against it, side by side with the real server, so
each figure can be read as a ratio to what Python itself allows.

    python bench/baseline.py --port 8765 [--populate SLUG:N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal

from elements import board_elements
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

TICK_S = 0.025
FRAME_BYTES = 256 * 1024
LIMITS = {
    "max_frame_bytes": 262144,
    "max_points": 5000,
    "max_elements": 1_000_000,
    "ops_per_second": 1_000_000,
    "heartbeat_seconds": 20,
}


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Board:
    """One board's members, elements and pending ops, flushed once per tick."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.seq = 0
        self.members: set[ServerConnection] = set()
        self.elements: list[str] = []
        self.pending: list[str] = []
        self.task: asyncio.Task | None = None

    def add(self, cid: str, element: dict, sid: str) -> None:
        """Assign the next seq and queue the entry; start the flusher if idle."""
        self.seq += 1
        element = {**element, "v": self.seq, "by": sid}
        text = dumps(
            {"op": "add", "seq": self.seq, "cid": cid, "sid": sid, "by": sid}
            | {"element": element}
        )
        self.pending.append(text)
        self.elements.append(dumps(element))
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def run(self) -> None:
        """Send at once, then no more than one frame per tick while ops keep coming
        (the loop of whiteboard/realtime/room.py's Room.run, without the commit)."""
        loop = asyncio.get_running_loop()
        try:
            while self.pending:
                started = loop.time()
                texts, self.pending = self.pending, []
                broadcast(
                    self.members, '{"type":"ops","ops":[' + ",".join(texts) + "]}"
                )
                await asyncio.sleep(0)  # let the ops that arrived meanwhile in
                wait = TICK_S - (loop.time() - started)
                if self.pending and wait > 0:
                    await asyncio.sleep(wait)
        finally:
            self.task = None

    def snapshot_frames(self) -> list[str]:
        """The elements in frames of at most FRAME_BYTES, cut as ours cuts them."""
        chunks, chunk, size = [], [], 0
        for item in self.elements:
            if chunk and size + len(item) > FRAME_BYTES:
                chunks.append(chunk)
                chunk, size = [], 0
            chunk.append(item)
            size += len(item) + 1
        chunks.append(chunk)
        head = f'{{"type":"snapshot","seq":{self.seq},"elements":['
        last = len(chunks) - 1
        return [
            head + ",".join(c) + f'],"more":{"true" if i < last else "false"}}}'
            for i, c in enumerate(chunks)
        ]


class Server:
    """Boards by slug, and the connection handler."""

    def __init__(self) -> None:
        self.boards: dict[str, Board] = {}
        self.sids = itertools.count(1)

    def board(self, slug: str) -> Board:
        found = self.boards.get(slug)
        if found is None:
            found = self.boards[slug] = Board(slug)
        return found

    async def handle(self, ws: ServerConnection) -> None:
        parts = ws.request.path.split("?")[0].strip("/").split("/")
        if len(parts) != 3 or parts[:2] != ["ws", "boards"]:
            await ws.close(4404)
            return
        board = self.board(parts[2])
        sid = f"s{next(self.sids)}"
        await ws.send(welcome(board, sid))
        for frame in board.snapshot_frames():
            await ws.send(frame)
        board.members.add(ws)
        try:
            async for raw in ws:
                await self.receive(ws, board, sid, raw)
        except ConnectionClosed:
            pass
        finally:
            board.members.discard(ws)

    async def receive(self, ws, board: Board, sid: str, raw) -> None:
        msg = json.loads(raw)
        kind = msg.get("type")
        if kind == "add":
            board.add(msg["cid"], msg["element"], sid)
        elif kind == "ping":
            await ws.send(dumps({**msg, "type": "pong"}))


def welcome(board: Board, sid: str) -> str:
    return dumps(
        {
            "type": "welcome",
            "protocol": 1,
            "board": {"slug": board.slug, "title": board.slug, "role": "editor"}
            | {"locked": False},
            "you": {"sid": sid, "name": sid, "color": "#1e88e5"},
            "users": [],
            "seq": board.seq,
            "limits": LIMITS,
        }
    )


def populate(server: Server, spec: str) -> None:
    """SLUG:N: the board starts with the late-join scenario's N elements."""
    slug, count = spec.rsplit(":", 1)
    board = server.board(slug)
    for element in board_elements(int(count)):
        board.seq += 1
        board.elements.append(dumps({**element, "v": board.seq, "by": "seed"}))


async def main(port: int, seed: list[str]) -> None:
    server = Server()
    for spec in seed:
        populate(server, spec)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        server.handle,
        "127.0.0.1",
        port,
        compression=None,
        max_size=None,
        ping_interval=None,
        max_queue=None,
    ):
        print(f"Listening on TCP address 127.0.0.1:{port}", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--populate", action="append", default=[])
    args = parser.parse_args()
    asyncio.run(main(args.port, args.populate))
