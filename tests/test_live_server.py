"""What only a real server shows: daphne on loopback and a real WebSocket client."""

import asyncio
import json
import signal
import socket

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.live import add_frame, next_of, read_state

pytestmark = pytest.mark.live


async def closed_with(ws, timeout=10):
    """Read until the server closes; return (close code, frames read before it)."""
    frames = []
    async with asyncio.timeout(timeout):
        try:
            while True:
                frames.append(json.loads(await ws.recv()))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None, frames


async def test_two_clients_see_each_others_ops(start_server, live_db):
    server = start_server()
    slug = live_db.create_board()
    async with server.open(slug) as alice:
        alice_welcome, state = await read_state(alice)
        assert state == [{"type": "snapshot", "seq": 0, "elements": [], "more": False}]
        bob = await server.open(slug)
        welcome, _ = await read_state(bob)
        assert [u["sid"] for u in welcome["users"]] == [alice_welcome["you"]["sid"]]
        await alice.send(add_frame("from-alice"))
        await bob.send(add_frame("from-bob"))
        seen = {"alice": [], "bob": []}
        for name, ws in (("alice", alice), ("bob", bob)):
            while len(seen[name]) < 2:
                frame = await next_of(ws, "ops")
                seen[name] += [op["element"]["id"] for op in frame["ops"]]
        await bob.close()
        assert seen["alice"] == seen["bob"]
        assert sorted(seen["alice"]) == ["from-alice", "from-bob"]


@pytest.mark.parametrize("origin", ["http://evil.example", None])
async def test_foreign_or_missing_origin_is_refused_with_403(start_server, origin):
    server = start_server()
    with pytest.raises(InvalidStatus) as refused:
        async with server.open("any", origin=origin):
            pass
    assert refused.value.response.status_code == 403


async def test_other_paths_are_refused_at_the_handshake(start_server):
    server = start_server()
    for path in ("Upper-Case", "a_b", "x" * 65):
        with pytest.raises(InvalidStatus) as refused:
            async with server.open(path):
                pass
        assert refused.value.response.status_code == 403
    assert "Traceback" not in server.logs()


async def test_missing_board_gets_an_error_frame_then_4404(start_server):
    server = start_server()
    async with server.open("no-such-board") as ws:
        code, frames = await closed_with(ws)
    assert code == 4404
    assert [f["code"] for f in frames] == ["not_found"]


async def test_private_board_refuses_a_guest_with_4401(start_server, live_db):
    server = start_server()
    slug = live_db.create_board(None, "--private")
    async with server.open(slug) as ws:
        code, frames = await closed_with(ws)
    assert (code, frames[0]["code"]) == (4401, "login_required")
    assert len(frames) == 1, "no board data before access is decided"


async def test_oversized_message_closes_with_1009_before_it_is_read(
    start_server, live_db
):
    server = start_server(WHITEBOARD_MAX_FRAME_BYTES=4096)
    slug = live_db.create_board()
    async with server.open(slug) as ws:
        welcome, _ = await read_state(ws)
        assert welcome["limits"]["max_frame_bytes"] == 4096
        # 1,500 three-byte characters: under the limit in characters, over it in bytes.
        await ws.send(
            json.dumps({"type": "ping", "pad": "€" * 1500}, ensure_ascii=False)
        )
        code, frames = await closed_with(ws)
    assert code == 1009
    assert not [f for f in frames if f["type"] in {"pong", "error"}]


async def test_silent_client_is_closed_with_4408_and_pinging_client_is_not(
    start_server, live_db
):
    server = start_server(WHITEBOARD_HEARTBEAT_SECONDS=1)
    slug = live_db.create_board()
    # WebSocket control-frame pings every 0.3 s do not count as activity.
    async with (
        server.open(slug, ping_interval=0.3) as silent,
        server.open(slug) as busy,
    ):
        await read_state(silent)
        await read_state(busy)

        # busy pings at the heartbeat pace until silent is cut off, and each
        # pause ends at once if it is.
        cut_off = asyncio.create_task(closed_with(silent, timeout=8))
        n = 0
        while not cut_off.done():
            await busy.send(json.dumps({"type": "ping", "n": n}))
            assert (await next_of(busy, "pong"))["n"] == n
            await asyncio.wait([cut_off], timeout=0.5)
            n += 1
        code, frames = cut_off.result()
        assert code == 4408
        assert not [f for f in frames if f["type"] == "error"]
        # busy has been open as long as silent, past the idle limit, and is served.
        await busy.send(json.dumps({"type": "ping", "n": n}))
        assert (await next_of(busy, "pong"))["n"] == n
        assert not busy.close_code


async def test_resume_with_since_gets_exactly_the_missed_ops(start_server, live_db):
    server = start_server()
    slug = live_db.create_board()
    async with server.open(slug) as writer:
        await read_state(writer)
        for n in range(5):
            await writer.send(add_frame(f"e{n}"))
        seqs = []
        while len(seqs) < 5:
            seqs += [op["seq"] for op in (await next_of(writer, "ops"))["ops"]]
    async with server.open(slug, "?since=2") as reader:
        welcome, frames = await read_state(reader)
    assert welcome["seq"] == 5
    replayed = [op for frame in frames for op in frame["ops"]]
    assert [op["seq"] for op in replayed] == [3, 4, 5]
    assert [op["element"]["id"] for op in replayed] == ["e2", "e3", "e4"]


@pytest.mark.parametrize("runserver", [False, True], ids=["daphne", "runserver"])
async def test_graceful_stop_says_bye_closes_1012_and_keeps_every_op(
    start_server, live_db, runserver
):
    server = start_server(runserver=runserver)
    slug = live_db.create_board()
    async with server.open(slug) as ws:
        await read_state(ws)
        await ws.send(add_frame("before-stop"))
        await next_of(ws, "ops")
        await ws.send(add_frame("during-stop"))
        stopping = asyncio.create_task(asyncio.to_thread(server.stop, signal.SIGTERM))
        code, frames = await closed_with(ws)
        assert await stopping == 0, server.logs()
    assert code == 1012
    assert frames[-1] == {"type": "bye", "reason": "restart"}
    seen = {op["cid"] for f in frames if f["type"] == "ops" for op in f["ops"]}
    acked_or_seen = seen | {f["cid"] for f in frames if f["type"] == "ack"}
    # Restart and check that nothing a client saw was lost.
    server = start_server()
    async with server.open(slug) as ws:
        _, state = await read_state(ws)
    stored = {e["id"] for e in state[0]["elements"]}
    assert "before-stop" in stored
    assert {cid.removeprefix("cid0000-") for cid in acked_or_seen} <= stored


def silent_socket(server, slug):
    """A WebSocket that completes its handshake and then never reads or answers,
    so the stopping server waits for its close reply (up to 2 s)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(
        (
            f"GET /ws/boards/{slug}/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: {server.origin}\r\n\r\n"
        ).encode()
    )
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


@pytest.mark.parametrize("runserver", [False, True], ids=["daphne", "runserver"])
async def test_a_stopping_server_accepts_no_new_connection(
    start_server, live_db, runserver
):
    server = start_server(runserver=runserver)
    slug = live_db.create_board()
    with silent_socket(server, slug):
        async with server.open(slug) as ws:
            await read_state(ws)
            stopping = asyncio.create_task(
                asyncio.to_thread(server.stop, signal.SIGTERM)
            )
            assert (await next_of(ws, "bye"))["reason"] == "restart"
            # The process is still closing sockets (the silent one holds it up
            # to 2 s), but its port is closed: a client told bye cannot
            # reconnect to it.
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", server.port), timeout=5)
            assert server.process.poll() is None, "still running while refusing"
        assert await stopping == 0, server.logs()
