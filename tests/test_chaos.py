"""Chaos on live servers: Redis, PostgreSQL and daphne fail under real clients.

Every part is the real program: daphne processes on loopback, a redis-server
and a PostgreSQL cluster of the test's own where the test breaks them (so each
test runs the same in both passes of `make test`, whatever REDIS_URL and
DATABASE_URL say), and WebSocket clients that behave like the board page
(tests/chaos.py). Each test asserts what a user would notice: an op they saw
is never lost or doubled, the board keeps up, a failure is always answered
(an error or a retryable close), never with silence.
"""

import asyncio
import time

import pytest

from tests.chaos import Client, Ledger, Refused, stroke
from tests.live import RedisServer

pytestmark = pytest.mark.live


def to_thread(function, *args, **kwargs):
    return asyncio.to_thread(function, *args, **kwargs)


async def refusal(server, slug, **options):
    """Open a socket the server should refuse: (frames before the close, code)."""
    client = Client("refused", Ledger(), **options)
    try:
        await client.connect(server, slug, timeout=10)
    except Refused as refused:
        return refused.frames, refused.code
    await client.close()
    raise AssertionError(f"admitted: {client.welcome}")


# -- 7. the connection cap ------------------------------------------------------


async def test_a_socket_over_the_per_address_cap_gets_too_many_connections_4429(
    start_server, live_db
):
    cap = 5
    server = start_server(WHITEBOARD_MAX_CONNECTIONS_PER_ADDRESS=cap)
    slug = await to_thread(live_db.create_board)
    ledger = Ledger()
    clients = [Client(f"cap{n}", ledger) for n in range(cap)]
    for client in clients:
        await client.connect(server, slug)
    frames, code = await refusal(server, slug)
    assert code == 4429
    assert [f["code"] for f in frames] == ["too_many_connections"]
    # Those admitted are undisturbed, and a freed slot can be taken again.
    await clients[0].add_and_wait(stroke("under-cap"))
    assert clients[0].resolved[next(iter(clients[0].resolved))] == "ops"
    await clients[-1].close()
    again = await Client("again", ledger).connect(server, slug)
    assert again.live
    for client in (*clients[:-1], again):
        await client.close()
    assert [c.closes for c in clients[:-1]] == [[1000]] * (cap - 1)


# -- 2. Redis down when a client connects --------------------------------------------


async def test_redis_down_at_connect_closes_with_1013_and_a_reconnect_works(
    start_server, live_db, tmp_path
):
    redis = RedisServer(tmp_path)
    try:
        server = start_server(redis_url=redis.url)
        slug, other = [await to_thread(live_db.create_board) for _ in range(2)]
        ledger = Ledger()

        # A process that never reached Redis yet.
        await to_thread(redis.stop)
        frames, code = await refusal(server, slug)
        assert (code, frames) == (1013, [])

        # A process already listening (a board of its own open), then Redis goes.
        await to_thread(redis.start)
        bystander = await Client("bystander", ledger).reconnect(server, other)
        await to_thread(redis.stop)
        frames, code = await refusal(server, slug)
        assert (code, frames) == (1013, [])

        await to_thread(redis.start)
        back = time.monotonic()
        client = await Client("returning", ledger).reconnect(server, slug)
        cid = await client.add_and_wait(stroke("after-redis"))
        assert client.resolved[cid] == "ops"
        print(f"reconnected and drew {time.monotonic() - back:.2f} s after Redis")
        await client.close()
        await bystander.close()
        assert "Traceback" not in server.logs()
    finally:
        redis.stop()
