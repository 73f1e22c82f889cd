"""The per-connection bounds on a live daphne while the database is busy.

The database is held busy for real: a transaction of the test's own takes the
write lock (SQLite) or the board's row lock (PostgreSQL), so the server's
commit waits exactly as it would behind a slow writer.
"""

import asyncio
import contextlib
import json
import sqlite3
from urllib.parse import urlsplit

import pytest

from tests.live import next_of, read_state

pytestmark = pytest.mark.live


@contextlib.contextmanager
def database_busy(url, slug):
    """Hold the lock every commit on board `slug` needs, until the block ends."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(urlsplit(url).path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        conn = psycopg.connect(url)
        conn.execute(
            "SELECT id FROM whiteboard_board WHERE slug = %s FOR UPDATE", [slug]
        )
    try:
        yield
    finally:
        conn.rollback()
        conn.close()


def big_add(cid, eid, points=4000):
    element = {
        "id": eid,
        "kind": "stroke",
        "x": 0,
        "y": 0,
        "points": [[n, n % 97] for n in range(points)],
        "color": "#112233",
        "width": 2,
    }
    return json.dumps({"type": "add", "cid": cid, "element": element})


PRESENCE = {"joined", "left", "cursors", "draft"}


async def answers_until_pong(ws, token):
    """Every frame up to the pong of `token`: the server has read what came first."""
    await ws.send(json.dumps({"type": "ping", "token": token}))
    frames = []
    async with asyncio.timeout(30):
        while True:
            frame = json.loads(await ws.recv())
            if frame == {"type": "pong", "token": token}:
                return frames
            if frame["type"] not in PRESENCE:
                frames.append(frame)


async def answered_within(ws, seconds):
    """The frames, presence aside, that arrive within `seconds`."""
    frames = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                frames.append(json.loads(await ws.recv()))
    return [f for f in frames if f["type"] not in PRESENCE]


async def answers_until(ws, last):
    """Frames, presence aside, up to and including `last`."""
    frames = []
    async with asyncio.timeout(30):
        while not frames or frames[-1] != last:
            frame = json.loads(await ws.recv())
            if frame["type"] not in PRESENCE:
                frames.append(frame)
    return frames


async def test_copies_of_an_op_in_flight_are_answered_once(start_server, live_db):
    server = start_server()
    slug = live_db.create_board()
    text = big_add("copies-00000001", "big")
    assert len(text) > 30_000
    async with server.open(slug) as ws:
        await read_state(ws)
        with database_busy(live_db.url, slug):
            for _ in range(300):
                await ws.send(text)
            held = await answers_until_pong(ws, "read-all")
        assert held == []  # nothing answered while the op waits for the database
        committed = await next_of(ws, "ops", timeout=30)
        assert [op["cid"] for op in committed["ops"]] == ["copies-00000001"]
        ack = await next_of(ws, "ack", timeout=30)
        rest = await answers_until_pong(ws, "after")
    # One ack for the resends, which were answered once; no rate_limited.
    assert ack == {
        "type": "ack",
        "cid": "copies-00000001",
        "seq": committed["ops"][0]["seq"],
    }
    assert rest == []


async def test_past_the_bound_of_ops_in_flight_the_server_stops_reading(
    start_server, live_db
):
    """A client drawing faster than the database commits is slowed, not refused."""
    server = start_server(WHITEBOARD_MAX_PENDING_OPS=5, WHITEBOARD_OPS_PER_SECOND=500)
    slug = live_db.create_board()
    async with server.open(slug) as ws, server.open(slug) as other:
        await read_state(ws)
        await read_state(other)
        with database_busy(live_db.url, slug):
            for n in range(4):
                await ws.send(big_add(f"pending-{n:07d}", f"e{n}", points=10))
            # Under the bound the socket is read: four ops wait, the ping is answered.
            assert await answers_until_pong(ws, "under") == []
            for n in range(4, 7):
                await ws.send(big_add(f"pending-{n:07d}", f"e{n}", points=10))
            await ws.send(json.dumps({"type": "ping", "token": "over"}))
            # The fifth op reaches the bound: nothing after it is read, so the
            # ping behind it stays unanswered while the database is busy (a
            # server that read it would answer within milliseconds).
            assert await answered_within(ws, 1.0) == []
            # Another connection on the board is served meanwhile.
            assert await answers_until_pong(other, "bystander") == []
        frames = await answers_until(ws, {"type": "pong", "token": "over"})
        cids = [op["cid"] for f in frames if f["type"] == "ops" for op in f["ops"]]
        while len(cids) < 7:
            cids += [op["cid"] for op in (await next_of(ws, "ops", 30))["ops"]]
    assert not [f for f in frames if f["type"] == "error"]  # none refused
    assert frames[0]["type"] == "ops"  # the ping was read after commits
    assert cids == [f"pending-{n:07d}" for n in range(7)]
