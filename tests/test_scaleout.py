"""Two daphne processes sharing a real Redis channel layer and one database."""

import asyncio
import json

import pytest

from tests.live import add_frame, read_state

pytestmark = pytest.mark.live

OPS_EACH = 40


async def collect_ops(ws, expected):
    """Every op entry this client receives until `expected` cids have arrived."""
    entries, cids = [], set()
    async with asyncio.timeout(30):
        while len(cids) < expected:
            frame = json.loads(await ws.recv())
            if frame["type"] == "ops":
                entries += frame["ops"]
                cids |= {op["cid"] for op in frame["ops"]}
            else:
                assert frame["type"] in {"joined", "left", "cursors"}, frame
    return entries


async def send_ops(ws, prefix):
    for n in range(OPS_EACH):
        await ws.send(add_frame(f"{prefix}-{n}"))


async def test_every_op_reaches_clients_of_both_processes_in_the_same_seq_order(
    start_server, live_db, redis_url
):
    first = start_server(redis_url=redis_url)
    second = start_server(redis_url=redis_url)
    slug = live_db.create_board()
    async with first.open(slug) as alice:
        # alice has her welcome, so she is on the board when bob arrives.
        alice_welcome, _ = await read_state(alice)
        async with second.open(slug) as bob:
            bob_welcome, _ = await read_state(bob)
            # Presence spans processes: bob's welcome lists alice's connection.
            bob_sees = [u["sid"] for u in bob_welcome["users"]]
            assert alice_welcome["you"]["sid"] in bob_sees
            seen = asyncio.gather(
                collect_ops(alice, 2 * OPS_EACH), collect_ops(bob, 2 * OPS_EACH)
            )
            await asyncio.gather(send_ops(alice, "a"), send_ops(bob, "b"))
            alice_ops, bob_ops = await seen
    assert [op["seq"] for op in alice_ops] == list(range(1, 2 * OPS_EACH + 1))
    assert alice_ops == bob_ops


async def test_presence_and_drafts_cross_processes(start_server, live_db, redis_url):
    first = start_server(redis_url=redis_url)
    second = start_server(redis_url=redis_url)
    slug = live_db.create_board()
    async with first.open(slug) as alice:
        await read_state(alice)
        async with second.open(slug) as bob:
            welcome, _ = await read_state(bob)
            joined = json.loads(await alice.recv())
            assert joined == {"type": "joined", "user": welcome["you"]}
            draft = json.loads(add_frame("d1"))["element"]
            await bob.send(json.dumps({"type": "draft", "element": draft}))
            got = json.loads(await alice.recv())
            assert got["type"] == "draft"
            assert got["sid"] == welcome["you"]["sid"]
            assert got["element"]["id"] == "d1"
        left = json.loads(await alice.recv())
        assert left == {"type": "left", "sid": welcome["you"]["sid"]}


async def test_a_quiet_channel_is_not_dropped_by_the_redis_client(
    start_server, live_db, redis_url
):
    """redis-py's default 5 s read timeout must not close idle sockets (1011)."""
    server = start_server(redis_url=redis_url, WHITEBOARD_HEARTBEAT_SECONDS=5)
    slug = live_db.create_board()
    async with server.open(slug) as ws:
        await read_state(ws)
        closed = asyncio.create_task(ws.wait_closed())
        for n in range(8):  # eight seconds with nothing on the board's channel
            # Each second of the client's heartbeat pace, the socket stays open.
            done, _ = await asyncio.wait([closed], timeout=1)
            assert not done, f"closed with {ws.close_code} after {n} s"
            await ws.send(json.dumps({"type": "ping", "n": n}))
            assert json.loads(await ws.recv()) == {"type": "pong", "n": n}
        closed.cancel()
    assert "Traceback" not in server.logs()
