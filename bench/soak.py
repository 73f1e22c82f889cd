"""Soak: thousands of connections for minutes, drawing and reconnecting.

Starts one real daphne (SQLite, in-memory channel layer), opens
`--connections` clients over `--boards` boards, and for `--duration` seconds
each client adds a stroke every `--op-every` seconds, reads everything it is
sent, and now and then drops its socket and resumes with `?since=`. The
server's RSS and open file descriptors are sampled every 10 s; the run passes
when both are flat (the last minute's median within the allowed growth of the
second minute's) and no client saw an error frame or an unexpected close.

    make soak                                   # 2,000 connections, 10 minutes
    .venv/bin/python bench/soak.py --connections 200 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import servers
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, WebSocketException

SAMPLE_EVERY = 10.0


@dataclass
class Tally:
    ops_sent: int = 0
    entries_received: int = 0
    reconnects: int = 0
    errors: list = field(default_factory=list)
    closes: dict = field(default_factory=dict)


def stroke_add(n: int) -> str:
    eid = uuid.uuid4().hex[:16]
    element = {
        "id": eid,
        "kind": "stroke",
        "x": n % 1000,
        "y": n % 700,
        "points": [[i, (i * 7) % 50] for i in range(20)],
        "color": "#1e88e5",
        "width": 2,
    }
    return json.dumps({"type": "add", "cid": f"soak-{eid}", "element": element})


async def client(url: str, origin: str, stop_at: float, args, tally: Tally) -> None:
    """One user: draws, reads, and reconnects with ?since= now and then."""
    since: int | None = None
    n = 0
    while time.monotonic() < stop_at:
        query = f"?since={since}" if since is not None else ""
        lifetime = random.uniform(0.5, 1.5) * args.reconnect_every
        until = min(stop_at, time.monotonic() + lifetime)
        try:
            async with connect(
                url + query,
                origin=origin,
                max_size=None,
                ping_interval=None,
                open_timeout=60,
                compression=None,
            ) as ws:
                since = await session(ws, until, args, tally, n)
        except (ConnectionClosed, WebSocketException, OSError, TimeoutError) as exc:
            code = getattr(getattr(exc, "rcvd", None), "code", type(exc).__name__)
            tally.closes[str(code)] = tally.closes.get(str(code), 0) + 1
            await asyncio.sleep(random.uniform(0.5, 2))
        tally.reconnects += 1
        n += 1


async def session(ws, until: float, args, tally: Tally, n: int) -> int:
    seq = 0
    next_op = time.monotonic() + random.uniform(0, args.op_every)
    next_ping = time.monotonic() + 10
    while True:
        now = time.monotonic()
        if now >= until:
            return seq
        if now >= next_op:
            await ws.send(stroke_add(n))
            tally.ops_sent += 1
            next_op = now + args.op_every
        if now >= next_ping:
            await ws.send('{"type":"ping"}')
            next_ping = now + 10
        timeout = max(0.01, min(next_op, next_ping, until) - now)
        try:
            text = await asyncio.wait_for(ws.recv(), timeout)
        except TimeoutError:
            continue
        frame = json.loads(text)
        kind = frame["type"]
        if kind == "welcome":
            seq = frame["seq"]
        elif kind == "ops":
            tally.entries_received += len(frame["ops"])
            if frame["ops"]:
                seq = max(seq, frame["ops"][-1]["seq"])
        elif kind == "error":
            tally.errors.append(frame)


def sample(pid: int) -> tuple[float, int]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return rss / 1024, fds


async def watch(pid: int, stop_at: float, samples: list) -> None:
    start = time.monotonic()
    while time.monotonic() < stop_at:
        rss, fds = sample(pid)
        samples.append((time.monotonic() - start, rss, fds))
        print(f"  t={samples[-1][0]:6.0f}s  rss={rss:7.1f} MB  fds={fds}", flush=True)
        await asyncio.sleep(SAMPLE_EVERY)


async def load(port: int, slugs: list[str], args, pid: int) -> tuple[Tally, list]:
    tally, samples = Tally(), []
    origin = f"http://127.0.0.1:{port}"
    stop_at = time.monotonic() + args.duration
    tasks = []
    for i in range(args.connections):
        url = f"ws://127.0.0.1:{port}/ws/boards/{slugs[i % len(slugs)]}/"
        tasks.append(asyncio.create_task(client(url, origin, stop_at, args, tally)))
        if i % 25 == 24:
            # Open gradually, as users arrive: daphne drops a handshake that
            # waits more than 5 s for its application.
            await asyncio.sleep(0.5)
    await asyncio.gather(watch(pid, stop_at, samples), *tasks)
    return tally, samples


def flat(samples: list, column: int, allowed: float, slack: float) -> tuple[bool, str]:
    """The last minute's median against the second minute's (after warm-up)."""
    second = [s[column] for s in samples if 60 <= s[0] < 120] or [samples[0][column]]
    last_t = samples[-1][0]
    last = [s[column] for s in samples if s[0] >= last_t - 60]
    early, late = statistics.median(second), statistics.median(last)
    ok = late <= early * (1 + allowed) + slack
    return ok, f"{early:.1f} -> {late:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--boards", type=int, default=100)
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--op-every", type=float, default=10.0)
    parser.add_argument("--reconnect-every", type=float, default=120.0)
    args = parser.parse_args(argv)
    servers.raise_nofile()
    slugs = [f"soak-{i}" for i in range(args.boards)]
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        env = servers.site_env(Path(tmp), None, None)
        servers.prepare_site(env, slugs)
        with servers.daphne(env, Path(tmp) / "daphne.log") as server:
            tally, samples = asyncio.run(load(server.port, slugs, args, server.pid))
            log = server.tail(200)
    rss_ok, rss = flat(samples, 1, 0.10, 20)
    fds_ok, fds = flat(samples, 2, 0.05, 20)
    print(f"ops sent {tally.ops_sent}, op entries received {tally.entries_received}")
    print(f"sessions {tally.reconnects}, closes {tally.closes}")
    print(f"RSS MB {rss} ({'flat' if rss_ok else 'GROWING'})")
    print(f"open fds {fds} ({'flat' if fds_ok else 'GROWING'})")
    tracebacks = log.count("Traceback")
    print(f"error frames {len(tally.errors)}, tracebacks in the log {tracebacks}")
    for frame in tally.errors[:5]:
        print("  ", frame)
    return 0 if rss_ok and fds_ok and not tally.errors and not tracebacks else 1


if __name__ == "__main__":
    sys.exit(main())
