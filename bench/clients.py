"""The clients of the two scenarios that send no ops: late join and idle.

Late join: connect to a full board and time the arrival of its last `snapshot`
frame, counted from just before the TCP connect. Idle: hold thousands of joined
connections open while the caller reads the server's memory.
"""

from __future__ import annotations

import asyncio
import json
import time

from websockets.asyncio.client import ClientConnection, connect

OPEN_CONCURRENCY = 50


async def open_client(url: str, origin: str) -> ClientConnection:
    return await connect(
        url,
        origin=origin,
        compression=None,
        max_size=None,
        ping_interval=None,
        proxy=None,
        # Unread presence frames must not stall the reader (and with it close()).
        max_queue=None,
        open_timeout=60,
    )


async def read_state(ws: ClientConnection) -> tuple[int, int]:
    """Read `welcome` and the snapshot; (elements received, snapshot frames)."""
    welcome = json.loads(await asyncio.wait_for(ws.recv(), 60))
    if welcome.get("type") != "welcome":
        raise RuntimeError(f"first frame was {welcome.get('type')!r}, not welcome")
    elements = frames = 0
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if msg.get("type") != "snapshot" or msg.get("seq") != welcome["seq"]:
            raise RuntimeError(f"{msg.get('type')!r} frame in the snapshot")
        elements += len(msg["elements"])
        frames += 1
        if not msg["more"]:
            return elements, frames


async def late_join(url: str, origin: str, joins: int) -> dict:
    """Join `joins` times one after another; ms to the last snapshot frame each."""
    times, counts = [], set()
    for _ in range(joins):
        began = time.perf_counter_ns()
        ws = await open_client(url, origin)
        elements, frames = await read_state(ws)
        times.append((time.perf_counter_ns() - began) / 1e6)
        counts.add((elements, frames))
        await ws.close()
    return {"ms": times, "counts": sorted(counts)}


async def heartbeat(sockets: list, every: float = 15.0) -> None:
    """Ping as a real client does, so the server's idle rule (4408) never fires."""
    while True:
        await asyncio.sleep(every)
        for ws in list(sockets):
            try:
                await ws.send('{"type":"ping"}')
            except Exception:  # closed: reported by the count of open sockets
                continue


async def hold_idle(urls: list[str], origin: str, count: int, while_open) -> dict:
    """Open `count` joined connections over these boards (round-robin), call
    `while_open()` in a thread, then close them all."""
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    failures: list[str] = []

    async def one(url: str) -> ClientConnection | None:
        async with gate:
            try:
                ws = await open_client(url, origin)
                await read_state(ws)
                opened.append(ws)
                return ws
            except Exception as exc:  # counted and reported, never fatal
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
                return None

    began = time.monotonic()
    opened: list[ClientConnection] = []
    beat = asyncio.create_task(heartbeat(opened))
    sockets = [
        ws
        for ws in await asyncio.gather(
            *(one(urls[i % len(urls)]) for i in range(count))
        )
        if ws
    ]
    opened_s = time.monotonic() - began
    figures = await asyncio.to_thread(while_open)
    beat.cancel()
    closed = [ws.close_code for ws in sockets if ws.close_code is not None]
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "open": len(sockets) - len(closed),
        "failures": failures[:5],
        "open_s": round(opened_s, 1),
        **figures,
    }
