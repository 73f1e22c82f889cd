"""Visible means committed: kill -9 the server mid-traffic and lose nothing seen."""

import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed

from tests.live import add_frame, read_state

pytestmark = pytest.mark.live

CLIENTS = 3


async def write_until_dropped(ws, name, seen, enough):
    """Send adds one after another, each once the last came back in `ops`,
    recording every op seen, until the server goes away."""
    with pytest.raises(ConnectionClosed):
        for n in range(10_000):
            await ws.send(add_frame(f"{name}-{n}"))
            while f"{name}-{n}" not in seen:
                frame = json.loads(await ws.recv())
                assert frame["type"] in {"ops", "joined", "left"}, frame
                if frame["type"] == "ops":
                    seen.update(op["element"]["id"] for op in frame["ops"])
            if len(seen) >= 60:
                enough.set()


async def test_kill_9_while_clients_write_loses_no_op_a_client_saw(
    start_server, live_db
):
    # Clients wait for each op's echo before the next, so no pacing is needed;
    # the rate limit is raised so that it never refuses one.
    server = start_server(WHITEBOARD_OPS_PER_SECOND=10_000)
    slug = live_db.create_board()
    seen, enough = set(), asyncio.Event()
    async with (
        server.open(slug) as a,
        server.open(slug) as b,
        server.open(slug) as c,
    ):
        for ws in (a, b, c):
            await read_state(ws)
        writers = [
            asyncio.create_task(write_until_dropped(ws, name, seen, enough))
            for ws, name in ((a, "a"), (b, "b"), (c, "c"))
        ]
        await asyncio.wait_for(enough.wait(), 30)
        server.kill()
        await asyncio.wait_for(asyncio.gather(*writers), 30)
    restarted = start_server()
    async with restarted.open(slug) as ws:
        welcome, frames = await read_state(ws)
    stored = {e["id"] for frame in frames for e in frame["elements"]}
    assert len(seen) >= 60
    assert seen <= stored, f"lost after kill -9: {sorted(seen - stored)[:10]}"
    assert welcome["seq"] == len(stored)
