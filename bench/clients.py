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
    return check_state(await receive_state(ws))


async def receive_state(ws: ClientConnection) -> list:
    """The raw frames up to the last snapshot frame, undecoded.

    The last frame is recognised by its ending (`"more":false}`, as both servers
    end it), so the join is timed without the client's own JSON decoding, which
    costs more than the transfer; `check_state` decodes and checks them after.
    """
    frames = [await asyncio.wait_for(ws.recv(), 60)]
    while True:
        frames.append(await asyncio.wait_for(ws.recv(), 60))
        if frames[-1].endswith('"more":false}'):
            return frames


def check_state(frames: list) -> tuple[int, int]:
    welcome = json.loads(frames[0])
    if welcome.get("type") != "welcome":
        raise RuntimeError(f"first frame was {welcome.get('type')!r}, not welcome")
    elements = 0
    for i, raw in enumerate(frames[1:], 1):
        msg = json.loads(raw)
        if msg.get("type") != "snapshot" or msg.get("seq") != welcome["seq"]:
            raise RuntimeError(f"{msg.get('type')!r} frame in the snapshot")
        if msg["more"] != (i < len(frames) - 1):
            raise RuntimeError("snapshot frame with a wrong `more`")
        elements += len(msg["elements"])
    return elements, len(frames) - 1


async def late_join(url: str, origin: str, joins: int) -> dict:
    """Join `joins` times one after another; ms to the last snapshot frame each,
    and the CPU the client itself spent reading and decoding the frames."""
    times, cpu, counts = [], [], set()
    for _ in range(joins):
        began, cpu0 = time.perf_counter_ns(), time.process_time()
        ws = await open_client(url, origin)
        raw = await receive_state(ws)
        times.append((time.perf_counter_ns() - began) / 1e6)
        cpu.append((time.process_time() - cpu0) * 1e3)
        elements, frames = check_state(raw)
        counts.add((elements, frames))
        await ws.close()
    return {"ms": times, "client_cpu_ms": cpu, "counts": sorted(counts)}


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
