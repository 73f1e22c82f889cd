"""Viewports (PROTOCOL.md 1.1, "Viewports (follow mode)") end to end: a client's
`viewport` reaches the others on its board as `viewports`, coalesced per board and
per connection, never its sender, from viewers too; a bad one is refused."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from tests.live import read_state
from whiteboard import broadcast
from whiteboard.models import Board, board_group
from whiteboard.protocol import frames
from whiteboard.realtime import room, session
from whiteboard.realtime.room import VIEWPORT_INTERVAL

pytestmark = pytest.mark.django_db(transaction=True)


def viewport(x=0, y=0, w=800, h=600, **extra):
    return {"type": "viewport", "x": x, "y": y, "w": w, "h": h, **extra}


def seen(client, x=0, y=0, w=800, h=600):
    """One entry of a `viewports` frame, as the others receive it."""
    return {"sid": client.sid, "x": x, "y": y, "w": w, "h": h}


async def error(client, code):
    frame = await client.recv_type("error")
    assert frame["code"] == code, frame
    assert "cid" not in frame
    return frame


@database_sync_to_async
def set_board(board, **values):
    Board.objects.filter(pk=board.pk).update(**values)


async def test_welcome_lists_the_features(board, connect):
    a = await connect()
    assert a.welcome["features"] == ["epoch", "follow", "image", "note", "viewport"]


async def test_viewport_reaches_others_never_its_sender(board, connect):
    a = await connect()
    b = await connect()
    c = await connect()
    await a.recv_type("joined")
    await a.recv_type("joined")
    await b.recv_type("joined")
    await a.send(viewport(-10.5, 20, 1920, 1080))
    want = {"type": "viewports", "viewports": [seen(a, -10.5, 20, 1920, 1080)]}
    assert await b.recv() == want
    assert await c.recv() == want
    await a.nothing(2 * VIEWPORT_INTERVAL)


async def test_viewports_within_100_ms_arrive_coalesced_to_the_latest(board, connect):
    loop = asyncio.get_running_loop()
    a = await connect()
    b = await connect()
    await a.recv_type("joined")
    first = loop.time()
    await a.send(viewport(1, 1))
    assert await b.recv() == {"type": "viewports", "viewports": [seen(a, 1, 1)]}
    await a.send(viewport(2, 2))
    await a.send(viewport(3, 3, 400, 300))  # within the same 100 ms: the latest wins
    assert await b.recv() == {
        "type": "viewports",
        "viewports": [seen(a, 3, 3, 400, 300)],
    }
    assert loop.time() - first >= VIEWPORT_INTERVAL - 0.005  # at most every 100 ms
    await asyncio.gather(a.nothing(), b.nothing(2 * VIEWPORT_INTERVAL))


async def test_viewports_of_several_senders_share_one_frame(board, connect):
    a = await connect()
    b = await connect()
    c = await connect()
    await a.send(viewport(1, 1))  # goes out at once; the next wait 100 ms
    assert (await c.recv_type("viewports"))["viewports"] == [seen(a, 1, 1)]
    await a.send(viewport(2, 2))
    await b.send(viewport(5, 5, 50, 60))
    frame = await c.recv_type("viewports")
    assert sorted(frame["viewports"], key=lambda item: item["x"]) == [
        seen(a, 2, 2),
        seen(b, 5, 5, 50, 60),
    ]


async def test_viewports_are_not_ops_and_take_no_rate_tokens(board, connect, settings):
    settings.WHITEBOARD_LIMITS = {**settings.WHITEBOARD_LIMITS, "ops_per_second": 2}
    a = await connect()
    b = await connect()
    for n in range(20):
        await a.send(viewport(n, n))
    # The whole bucket is still there: two ops in a row are committed.
    for n in range(2):
        element = {"id": f"r{n}", "kind": "rect", "x": 0, "y": 0, "w": 1, "h": 1}
        element |= {"color": "#000000", "width": 1}
        cid = f"cid-rate-{n:04d}"
        await a.send({"type": "add", "cid": cid, "element": element})
        ops = await a.recv_type("ops")
        assert [entry["cid"] for entry in ops["ops"]] == [cid]
    await a.quiet()
    frame = await b.recv_type("viewports")
    assert frame["viewports"][0]["sid"] == a.sid
    assert not any(f["type"] == "error" for f in a.skipped + b.skipped)


async def test_a_viewer_and_a_locked_board_may_send_viewports(board, connect):
    await set_board(board, visitor_role="viewer", locked=True)
    viewer = await connect()
    other = await connect()
    assert viewer.welcome["board"]["role"] == "viewer"
    await viewer.send(viewport(7, 8, 9, 10))
    assert await other.recv_type("viewports") == {
        "type": "viewports",
        "viewports": [seen(viewer, 7, 8, 9, 10)],
    }
    await viewer.quiet()


@pytest.mark.parametrize(
    "frame",
    [
        viewport(w=0),
        viewport(h=-1),
        viewport(w=1_000_001),
        viewport(x=1_000_001),
        viewport(w="800"),
        viewport(y=True),
        viewport(zoom=2),
        viewport(follows=""),
        viewport(follows=7),
        viewport(follows=["x"]),
        viewport(follows="no spaces"),
        viewport(follows="x" * 65),
        {"type": "viewport", "x": 0, "y": 0, "w": 800},
    ],
)
async def test_bad_viewport_is_bad_message_and_not_shown(board, connect, frame):
    a = await connect()
    b = await connect()
    await a.send(frame)
    await error(a, "bad_message")
    await b.quiet(2 * VIEWPORT_INTERVAL)
    assert not any(f["type"] == "viewports" for f in b.skipped)


async def test_whom_a_viewport_follows_is_passed_on(board, connect):
    """Feature "follow": `follows` (a sid or null) reaches the others; a viewport
    without it, or with null, is passed on without it."""
    a = await connect()
    b = await connect()
    await a.recv_type("joined")
    await a.send(viewport(1, 2, 3, 4, follows=b.sid))
    assert await b.recv_type("viewports") == {
        "type": "viewports",
        "viewports": [{**seen(a, 1, 2, 3, 4), "follows": b.sid}],
    }
    await a.send(viewport(1, 2, 3, 4, follows=None))
    assert await b.recv_type("viewports") == {
        "type": "viewports",
        "viewports": [seen(a, 1, 2, 3, 4)],
    }
    await a.quiet()


async def test_a_viewports_cid_is_an_unknown_field_and_is_echoed(board, connect):
    a = await connect()
    await a.send(viewport(cid="cid-viewport-1"))
    frame = await a.recv_type("error")
    assert frame["code"] == "bad_message"
    assert frame["cid"] == "cid-viewport-1"


async def test_bad_viewports_count_as_refusals_the_101st_closes_1008(board, connect):
    a = await connect()
    b = await connect()
    for n in range(100):
        await a.send(viewport(w=0) if n % 2 else viewport(extra=1))
    for _ in range(100):
        await error(a, "bad_message")
    await a.nothing()
    await a.send(viewport(w="wide"))
    code, sent = await a.closed()
    assert code == 1008
    assert [json.loads(f["text"])["code"] for f in sent] == ["bad_message"]
    assert await b.recv_type("left") == {"type": "left", "sid": a.sid}


async def test_a_leavers_pending_viewport_is_forgotten(board, connect, monkeypatch):
    monkeypatch.setattr(room, "VIEWPORT_INTERVAL", 1.0)  # ample time to leave
    a = await connect()
    b = await connect()
    await a.send(viewport(1, 1))
    assert (await b.recv_type("viewports"))["viewports"] == [seen(a, 1, 1)]
    await a.send(viewport(2, 2))  # held by the board for the interval ...
    await a.close()  # ... and dropped when its sender leaves
    assert await b.recv() == {"type": "left", "sid": a.sid}
    await b.nothing(1.2)


async def test_viewports_from_another_process_reach_the_connections_here(
    board, connect, monkeypatch
):
    """What another process's board publishes (room.volatile_event) arrives
    through the channel layer and is passed on like a local viewport."""
    monkeypatch.setattr(session, "VIEWPORT_INTERVAL", 1.0)  # ample time for `left`
    a = await connect()
    item = frames.viewport_item("elsewhere", 3, 4, 500, 400)
    event = {"type": broadcast.VOLATILE, "board": "team", "cursors": []}
    event |= {"drafts": [], "viewports": [["elsewhere", item], [a.sid, item]]}
    await get_channel_layer().group_send(board_group("team"), event)
    assert await a.recv() == {
        "type": "viewports",
        "viewports": [{"sid": "elsewhere", "x": 3, "y": 4, "w": 500, "h": 400}],
    }
    # A process of an earlier version sends no `viewports`; nothing breaks.
    cursor = frames.cursor_item("elsewhere", 1, 2)
    older = {"type": broadcast.VOLATILE, "board": "team", "drafts": []}
    older["cursors"] = [["elsewhere", cursor]]
    await get_channel_layer().group_send(board_group("team"), older)
    assert (await a.recv())["type"] == "cursors"
    # And `left` of that connection forgets its viewport still waiting here.
    await get_channel_layer().group_send(board_group("team"), event)
    left = {"type": broadcast.LEFT, "board": "team", "sid": "elsewhere"}
    await get_channel_layer().group_send(board_group("team"), left)
    await a.nothing(1.2)


@pytest.mark.live
async def test_viewports_cross_processes(start_server, live_db, redis_url):
    first = start_server(redis_url=redis_url)
    second = start_server(redis_url=redis_url)
    slug = live_db.create_board()
    async with first.open(slug) as alice:
        await read_state(alice)
        async with second.open(slug) as bob:
            welcome, _ = await read_state(bob)
            features = ["epoch", "follow", "image", "note", "viewport"]
            assert welcome["features"] == features
            assert json.loads(await alice.recv())["type"] == "joined"
            await bob.send(json.dumps(viewport(-5, 6.5, 1280, 720)))
            got = json.loads(await alice.recv())
            sid = welcome["you"]["sid"]
            assert got == {
                "type": "viewports",
                "viewports": [{"sid": sid, "x": -5, "y": 6.5, "w": 1280, "h": 720}],
            }
