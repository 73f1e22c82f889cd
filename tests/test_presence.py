"""Presence rows that outlive their process, and processes that outlive their
rows: who a client is shown as on the board must come right by itself.

A killed process leaves rows nobody refreshes; another process reaps them after
three heartbeats and says `left`, since a client that joined before was listed
them. A process cut off from the database while another reaped its rows writes
them again and says `joined`, and its own clients are never told its users left.
"""

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from whiteboard import broadcast, services
from whiteboard.models import Presence, board_group

pytestmark = pytest.mark.django_db(transaction=True)

HEARTBEAT = 1


@pytest.fixture
def short_heartbeat(settings):
    settings.WHITEBOARD_LIMITS = {
        **settings.WHITEBOARD_LIMITS,
        "heartbeat_seconds": HEARTBEAT,
    }


def ghost_row(board, *, sid, age, server="dead-host:1:0000"):
    """A presence row of another process, last refreshed `age` seconds ago."""
    return Presence.objects.create(
        board=board,
        sid=sid,
        name="Ghost",
        color="#123456",
        role="editor",
        server=server,
        channel_name="gone",
        seen_at=timezone.now() - timedelta(seconds=age),
    )


# == services =====================================================================


def test_touch_reaps_only_other_processes_stale_rows(board):
    ghost_row(board, sid="stale", age=10)
    ghost_row(board, sid="fresh", age=1)
    ghost_row(board, sid="mine", age=10, server="me")
    check = services.presence_touch(server="me", sids=["mine"], heartbeat_seconds=2)
    assert check.reaped == [("stale", "team")]
    assert check.missing == []
    assert set(Presence.objects.values_list("sid", flat=True)) == {"fresh", "mine"}
    # Its own stale row was refreshed, not reaped.
    mine = Presence.objects.get(sid="mine")
    assert mine.seen_at > timezone.now() - timedelta(seconds=2)
    # Reaped once: a second pass finds nothing more.
    again = services.presence_touch(server="me", sids=["mine"], heartbeat_seconds=2)
    assert again.reaped == []


def test_touch_names_own_rows_that_are_gone_and_restore_writes_them(board):
    ghost_row(board, sid="kept", age=0, server="me")
    check = services.presence_touch(
        server="me", sids=["kept", "lost"], heartbeat_seconds=2
    )
    assert check.missing == ["lost"]
    row = {
        "board_id": board.pk,
        "sid": "lost",
        "name": "Lou",
        "color": "#abcdef",
        "user_id": None,
        "role": "editor",
    }
    services.presence_restore(server="me", channel_name="ch", rows=[row])
    services.presence_restore(server="me", channel_name="ch", rows=[row])  # no-op
    lost = Presence.objects.get(sid="lost")
    assert (lost.name, lost.color, lost.server) == ("Lou", "#abcdef", "me")
    again = services.presence_touch(
        server="me", sids=["kept", "lost"], heartbeat_seconds=2
    )
    assert again.missing == []


# == live connections ===============================================================


async def test_a_dead_process_connection_listed_in_a_welcome_is_said_left(
    board, connect, short_heartbeat
):
    # Refreshed 2.5 heartbeats ago: still listed, stale half a heartbeat later.
    await database_sync_to_async(ghost_row)(board, sid="ghost", age=2.5 * HEARTBEAT)
    watcher = await connect()
    assert [u["sid"] for u in watcher.welcome["users"]] == ["ghost"]
    assert await watcher.recv_type("left", timeout=4 * HEARTBEAT) == {
        "type": "left",
        "sid": "ghost",
    }
    late = await connect()
    assert late.welcome["users"] == [watcher.welcome["you"]]


async def test_rows_reaped_while_the_database_was_away_are_written_again(
    board, connect, short_heartbeat
):
    a = await connect()
    b = await connect()
    assert await a.recv_type("joined") == {"type": "joined", "user": b.welcome["you"]}
    layer = get_channel_layer()
    elsewhere = await layer.new_channel()
    group = board_group("team")
    await layer.group_add(group, elsewhere)
    try:
        # What another process does after our rows went stale: delete a's row
        # and tell the board's group that a left.
        await database_sync_to_async(Presence.objects.filter(sid=a.sid).delete)()
        left = {"type": broadcast.LEFT, "sid": a.sid, "board": "team"}
        await layer.group_send(group, {**left, "origin": "other-host:2:ffff"})
        # At our next heartbeat the row is back and the other processes are
        # told a is here after all (that heartbeat may come before the group
        # has passed our `left` on, and b's own `joined` may still be on its
        # way: the order does not matter).
        seen: dict[str, dict] = {}
        while set(seen) != {broadcast.LEFT, broadcast.JOINED}:
            event = await asyncio.wait_for(layer.receive(elsewhere), 3 * HEARTBEAT)
            if event.get("sid", event.get("user", {}).get("sid")) == a.sid:
                seen[event["type"]] = event
        assert seen[broadcast.JOINED]["user"] == a.welcome["you"]
    finally:
        await layer.group_discard(group, elsewhere)
    row = await database_sync_to_async(Presence.objects.get)(sid=a.sid)
    assert (row.name, row.color) == (a.name, a.welcome["you"]["color"])
    # b, on this process, was never told that a left.
    await b.send({"type": "ping", "n": 1})
    assert await b.recv_type("pong") == {"type": "pong", "n": 1}
    assert not [f for f in b.skipped if f["type"] == "left"]
    late = await connect()
    assert {u["sid"] for u in late.welcome["users"]} == {a.sid, b.sid}


def test_restore_skips_rows_whose_board_or_account_is_gone(board, make_user):
    gone_user = make_user("gwen")
    other = services.board_create(slug="other", title="Other")

    def row(sid, board_id, user_id=None):
        return {
            "board_id": board_id,
            "sid": sid,
            "name": sid,
            "color": "#abcdef",
            "user_id": user_id,
            "role": "editor",
        }

    rows = [row("kept", board.pk), row("user-gone", board.pk, gone_user.pk)]
    rows.append(row("board-gone", other.pk))
    gone_user.delete()
    other.delete()
    written = services.presence_restore(server="me", channel_name="ch", rows=rows)
    assert written == ["kept"]
    assert list(Presence.objects.values_list("sid", flat=True)) == ["kept"]
