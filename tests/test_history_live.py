"""History on live servers: a restore reaches the clients of two processes at
once and is undone by its author's undo; a board replaced by an import sends
its clients back to a snapshot of the new history (its epoch changed)."""

import asyncio
import json
import uuid
from asyncio import to_thread

import pytest

from tests.live import add_frame, base_env, closed_with, manage, next_of, read_state
from tests.livehttp import Browser

pytestmark = pytest.mark.live


async def op_entries(ws, count):
    """The next `count` op entries, skipping presence frames."""
    entries = []
    async with asyncio.timeout(10):
        while len(entries) < count:
            frame = await next_of(ws, "ops")
            entries += frame["ops"]
    return entries


async def test_a_restore_reaches_both_processes_and_its_authors_undo_reverts_it(
    start_server, live_db, redis_url
):
    first = await to_thread(start_server, redis_url=redis_url)
    second = await to_thread(start_server, redis_url=redis_url)
    username = f"owner-{uuid.uuid4().hex[:8]}"
    await to_thread(live_db.create_user, username, "pw-for-tests-1")
    slug = await to_thread(live_db.create_board, None, "--owner", username)
    async with first.open(slug) as alice, second.open(slug) as bob:
        await read_state(alice)
        await read_state(bob)
        await alice.send(add_frame("kept"))
        await alice.send(add_frame("dropped"))
        assert len(await op_entries(bob, 2)) == 2
        await op_entries(alice, 2)

        owner = await to_thread(Browser.logged_in, first, username, "pw-for-tests-1")
        status, headers, _ = await to_thread(
            owner.post, f"/b/{slug}/restore", {"seq": "1"}
        )
        assert status == 302, status
        for ws in (alice, bob):
            (entry,) = await op_entries(ws, 1)
            assert (entry["op"], entry["ids"]) == ("delete", ["dropped"])
            assert (entry["seq"], entry["sid"], entry["by"]) == (3, None, username)

        # The owner's own socket: undo reverts the restore, for everyone.
        async with first.open(slug, additional_headers=owner.ws_headers()) as own:
            await read_state(own)
            await own.send(json.dumps({"type": "undo", "cid": "undo-restore-1"}))
            for ws in (alice, bob, own):
                (entry,) = await op_entries(ws, 1)
                assert entry["op"] == "add" and entry["element"]["id"] == "dropped"


async def test_a_board_replaced_by_an_import_sends_its_clients_to_a_snapshot(
    start_server, live_db, redis_url, tmp_path
):
    server = await to_thread(start_server, redis_url=redis_url)
    slug = await to_thread(live_db.create_board)
    async with server.open(slug) as ws:
        welcome, _ = await read_state(ws)
        epoch = welcome["board"]["epoch"]
        await ws.send(add_frame("old-1"))
        await ws.send(add_frame("old-2"))
        seq = (await op_entries(ws, 2))[-1]["seq"]
        file = tmp_path / "new.json"
        element = {
            "id": "new",
            "kind": "rect",
            "x": 1,
            "y": 2,
            "w": 3,
            "h": 4,
            "color": "#000000",
            "width": 1,
        }
        file.write_text(
            json.dumps(
                {
                    "format": "whiteboard-board",
                    "version": 1,
                    "board": {"title": "New"},
                    "elements": [element],
                }
            )
        )
        env = base_env(live_db.url, REDIS_URL=redis_url)
        await to_thread(
            manage, env, "importboard", str(file), "--slug", slug, "--replace"
        )
        code, last = await closed_with(ws, timeout=10)
        assert (code, last) == (1012, {"type": "bye", "reason": "restart"})
    # Resuming as a client does, with the old seq and epoch: the new board
    # whole, whose seq is below the one the client had.
    async with server.open(slug, f"?since={seq}&epoch={epoch}") as again:
        welcome, state = await read_state(again)
        assert welcome["board"]["epoch"] != epoch
        assert welcome["seq"] == 1
        assert [f["type"] for f in state] == ["snapshot"]
        assert [e["id"] for e in state[0]["elements"]] == ["new"]
        # And it is live: a new op is broadcast with the next seq.
        await again.send(add_frame("after"))
        (entry,) = await op_entries(again, 1)
        assert entry["seq"] == 2
