"""One connection's bounds and exits, through the real ASGI application."""

import json

import pytest
from asgiref.sync import sync_to_async as run
from django.contrib.sessions.models import Session

from tests.conftest import session_headers
from tests.live import free_port
from tests.test_consumers import limits, rect
from whiteboard import broadcast

pytestmark = pytest.mark.django_db(transaction=True)


def draft(element):
    return {"type": "draft", "element": element}


async def test_drafts_over_the_rate_are_dropped_not_refused(board, connect, settings):
    settings.WHITEBOARD_DRAFTS_PER_SECOND = 1
    drawer = await connect()
    watcher = await connect()
    await drawer.send(draft(rect("d1")))
    first = await watcher.recv_type("draft")
    await drawer.send(draft(rect("d2")))
    await drawer.send({"type": "ping", "n": 1})
    assert await drawer.recv_type("pong") == {"type": "pong", "n": 1}
    assert first["element"]["id"] == "d1"
    await watcher.quiet(0.3)
    assert not any(f["type"] == "draft" for f in watcher.skipped)


async def test_the_connection_over_the_cap_of_one_address_gets_4429(
    board, new_client, settings
):
    settings.WHITEBOARD_MAX_CONNECTIONS_PER_ADDRESS = 2
    clients = [new_client() for _ in range(4)]
    for n, client in enumerate(clients):
        address = "198.51.100.7" if n < 3 else "198.51.100.8"
        client.comm.scope["client"] = [address, 50000 + n]
    for client in clients[:2]:
        await client.open_board()
    connected, _ = await clients[2].handshake()
    assert connected
    frame = await clients[2].recv()
    assert (frame["type"], frame["code"]) == ("error", "too_many_connections")
    assert "Too many open connections" in frame["message"]
    code, _ = await clients[2].closed()
    assert code == 4429
    await clients[3].open_board()  # another address is not counted with it
    await clients[0].close()
    again = new_client()
    again.comm.scope["client"] = ["198.51.100.7", 50009]
    await again.open_board()  # a closed connection frees its place


async def test_a_channel_layer_that_cannot_be_reached_closes_with_1013(
    board, new_client, settings
):
    closed_port = free_port()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{closed_port}/0"]},
        }
    }
    client = new_client()
    connected, _ = await client.handshake()
    assert connected
    code, frames = await client.closed(timeout=10)
    assert code == 1013
    assert frames == []


@pytest.fixture
def alice(make_user):
    return make_user("alice")


async def test_the_end_of_a_login_closes_its_sockets_with_4401(board, alice, connect):
    client = await connect(headers=await run(session_headers)(alice))
    other = await connect()
    await run(broadcast.end_user_sessions)(user_id=alice.pk, message="You logged out.")
    code, frames = await client.closed()
    assert code == 4401
    assert json.loads(frames[-1]["text"]) == {
        "type": "error",
        "code": "login_required",
        "message": "You logged out.",
    }
    left = await other.recv_type("left")
    assert left["sid"] == client.sid


async def test_a_flushed_session_is_found_at_the_next_heartbeat(
    board, alice, connect, settings
):
    limits(settings, heartbeat_seconds=1)
    headers = await run(session_headers)(alice)
    client = await connect(headers=headers)
    await run(Session.objects.all().delete)()  # no event: only the check sees it
    code, frames = await client.closed(timeout=5)
    assert code == 4401
    assert json.loads(frames[-1]["text"])["code"] == "login_required"
