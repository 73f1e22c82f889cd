"""The board WebSocket end to end: config.asgi.application with its Origin check,
session auth and routing, BoardConsumer, the hub and the engine, as clients see them.
"""

import asyncio
import itertools
import json
import re

import pytest
from channels.db import database_sync_to_async
from django.contrib.sessions.backends.db import SessionStore

from tests.conftest import ORIGIN, session_headers
from whiteboard import protocol as p
from whiteboard import selectors, services
from whiteboard.changes import OpRequest
from whiteboard.identity import Author
from whiteboard.models import Board
from whiteboard.services import current_limits

pytestmark = pytest.mark.django_db(transaction=True)

COLOR = re.compile(r"#[0-9a-f]{6}")
SEEDER = Author(sid="seed-conn", by="Seeder", actor="conn:seed-conn")
_cids = itertools.count(1)


# -- frames --------------------------------------------------------------------


def new_cid():
    return f"cid-{next(_cids):08d}"


def rect(eid, **fields):
    element = {"id": eid, "kind": "rect", "x": 10, "y": 20, "w": 30, "h": 40}
    return {**element, "color": "#112233", "width": 2, **fields}


def stored(element, *, v, by):
    """An element as the server stores and sends it."""
    return {"fill": None, "opacity": 1, **element, "v": v, "by": by}


def add(element, cid=None):
    return {"type": "add", "cid": cid or new_cid(), "element": element}


def update(eid, cid=None, **values):
    return {"type": "update", "cid": cid or new_cid(), "id": eid, "set": values}


def delete(*ids, cid=None):
    return {"type": "delete", "cid": cid or new_cid(), "ids": list(ids)}


def op(kind, cid=None):
    return {"type": kind, "cid": cid or new_cid()}


async def commit(client, frame, others=()):
    """Send an op, return its entries; every client in `others` gets the same."""
    await client.send(frame)
    sent = await client.recv_type("ops")
    assert {entry["cid"] for entry in sent["ops"]} == {frame["cid"]}, sent
    for other in others:
        assert await other.recv_type("ops") == sent
    return sent["ops"]


async def error(client, code, cid=None):
    frame = await client.recv_type("error")
    assert frame["code"] == code, frame
    assert frame.get("cid") == cid, frame
    assert type(frame["message"]) is str and frame["message"]
    return frame


# -- the database, read and written without a socket ---------------------------


@database_sync_to_async
def seed(board, *frames, author=SEEDER):
    """Commit ops straight through the service, as another process would."""
    limits = current_limits()
    requests = []
    for frame in frames:
        envelope = p.parse_envelope(json.dumps(frame))
        message = p.validate(envelope, limits)
        requests.append(OpRequest(envelope.cid, envelope.type, author, message))
    result = services.ops_commit(board_id=board.pk, requests=requests, limits=limits)
    assert all(outcome.error is None for outcome in result.outcomes)
    return result


@database_sync_to_async
def board_state(board):
    """(seq, live elements in stacking order) as stored."""
    fresh = Board.objects.get(pk=board.pk)
    page = selectors.snapshot_page(board_id=fresh.pk, seq=fresh.seq, after_z=None)
    assert page.next_z is None
    elements = [e for frame in page.frames for e in json.loads(frame)["elements"]]
    return fresh.seq, elements


@database_sync_to_async
def set_board(board, **values):
    Board.objects.filter(pk=board.pk).update(**values)


def limits(settings, **values):
    settings.WHITEBOARD_LIMITS = {**settings.WHITEBOARD_LIMITS, **values}


@pytest.fixture
def owner(make_user):
    return make_user("olga", first_name="Olga", last_name="Owner")


@pytest.fixture
def private_board(owner):
    return services.board_create(
        slug="secret", title="Secret", owner=owner, is_public=False
    )


# == handshake ======================================================================


async def test_missing_board_is_refused_with_not_found_then_4404(new_client):
    client = new_client("/ws/boards/no-such-board/")
    assert (await client.handshake())[0] is True
    code, frames = await client.closed()
    assert code == 4404
    assert [json.loads(f["text"]) for f in frames] == [
        {
            "type": "error",
            "code": "not_found",
            "message": "There is no board at this address.",
        }
    ]


async def test_private_board_refuses_anonymous_with_login_required_4401(
    private_board, new_client
):
    client = new_client("/ws/boards/secret/")
    assert (await client.handshake())[0] is True
    code, frames = await client.closed()
    assert code == 4401
    assert [json.loads(f["text"])["code"] for f in frames] == ["login_required"]


async def test_guest_session_is_not_a_login_on_a_private_board(
    private_board, new_client
):
    session = await database_sync_to_async(guest_session)("Gwen")
    client = new_client("/ws/boards/secret/", [ORIGIN, session])
    await client.handshake()
    code, frames = await client.closed()
    assert code == 4401
    assert [json.loads(f["text"])["code"] for f in frames] == ["login_required"]


async def test_private_board_refuses_logged_in_stranger_with_forbidden_4403(
    private_board, make_user, new_client
):
    stranger = await database_sync_to_async(make_user)("sam")
    headers = await database_sync_to_async(session_headers)(stranger)
    client = new_client("/ws/boards/secret/", headers)
    assert (await client.handshake())[0] is True
    code, frames = await client.closed()
    assert code == 4403
    assert [json.loads(f["text"])["code"] for f in frames] == ["forbidden"]


async def test_private_board_admits_its_owner_as_owner(private_board, owner, connect):
    headers = await database_sync_to_async(session_headers)(owner)
    client = await connect("/ws/boards/secret/", headers)
    assert client.welcome["board"]["role"] == "owner"
    assert client.welcome["you"]["name"] == "Olga Owner"


async def test_logged_in_visitor_of_a_public_board_gets_the_visitor_role(
    board, make_user, connect
):
    await set_board(board, visitor_role="viewer")
    visitor = await database_sync_to_async(make_user)("vic")
    client = await connect(
        headers=await database_sync_to_async(session_headers)(visitor)
    )
    assert client.welcome["board"]["role"] == "viewer"
    assert client.welcome["you"]["name"] == "vic"


async def test_guest_without_session_is_an_editor_with_a_made_up_name(board, connect):
    client = await connect()
    assert client.welcome["board"]["role"] == "editor"
    assert client.name.strip()


async def test_guest_session_name_is_used(board, connect):
    session = await database_sync_to_async(guest_session)("Gwen")
    client = await connect(headers=[ORIGIN, session])
    assert client.name == "Gwen"


def guest_session(name):
    store = SessionStore()
    store["guest_name"] = name
    store.create()
    return (b"cookie", f"sessionid={store.session_key}".encode())


@pytest.mark.parametrize(
    "headers",
    [[], [(b"origin", b"http://evil.example")], [(b"origin", b"null")]],
    ids=["missing", "foreign", "null"],
)
async def test_foreign_or_missing_origin_is_refused_at_handshake(
    board, new_client, headers
):
    client = new_client(headers=headers)
    connected, _ = await client.handshake()
    assert connected is False
    assert await client.comm.receive_nothing(timeout=0.1)


@pytest.mark.parametrize(
    "path",
    [
        "/ws/boards/Team/",
        "/ws/boards/team",
        "/ws/boards/team/extra/",
        "/ws/other/",
        "/ws/boards/" + "a" * 65 + "/",
        "/ws/boards/te_am/",
    ],
)
async def test_path_that_is_not_a_board_endpoint_is_refused(board, new_client, path):
    client = new_client(path)
    connected, _ = await client.handshake()  # daphne answers HTTP 403
    assert connected is False
    assert await client.comm.receive_nothing(timeout=0.1)


# == welcome and board state ========================================================


async def test_welcome_has_exactly_the_protocol_shape_then_empty_snapshot(
    board, connect, settings
):
    client = await connect()
    welcome = client.welcome
    assert set(welcome) == {
        "type",
        "protocol",
        "board",
        "you",
        "users",
        "seq",
        "limits",
        "features",
    }
    assert welcome["protocol"] == 1
    assert welcome["features"] == ["epoch", "follow", "image", "note", "viewport"]
    assert welcome["board"] == {
        "slug": "team",
        "title": "Team board",
        "role": "editor",
        "locked": False,
        "epoch": board.epoch,
    }
    assert set(welcome["you"]) == {"sid", "name", "color"}
    assert type(welcome["you"]["sid"]) is str and welcome["you"]["sid"]
    assert type(welcome["you"]["name"]) is str and welcome["you"]["name"]
    assert COLOR.fullmatch(welcome["you"]["color"])
    assert welcome["users"] == []
    assert welcome["seq"] == 0
    assert welcome["limits"] == settings.WHITEBOARD_LIMITS
    assert set(welcome["limits"]) == {
        "max_frame_bytes",
        "max_points",
        "max_elements",
        "ops_per_second",
        "heartbeat_seconds",
        "max_board_bytes",
        "max_asset_bytes",
        "max_asset_pixels",
    }
    assert all(type(value) is int for value in welcome["limits"].values())
    assert client.state == [
        {"type": "snapshot", "seq": 0, "elements": [], "more": False}
    ]
    await client.nothing()


async def test_welcome_lists_other_connections_and_other_tabs_never_the_receiver(
    board, make_user, connect
):
    user = await database_sync_to_async(make_user)("tabby")
    headers = await database_sync_to_async(session_headers)(user)
    tab1 = await connect(headers=headers)
    tab2 = await connect(headers=headers)
    guest = await connect()
    assert tab1.welcome["users"] == []
    assert tab2.welcome["users"] == [tab1.welcome["you"]]
    assert guest.welcome["users"] == [tab1.welcome["you"], tab2.welcome["you"]]
    assert tab1.sid != tab2.sid and tab1.name == tab2.name == "tabby"


async def test_big_board_snapshot_is_split_over_frames_with_one_seq(board, new_client):
    texts = [f"{i:04d}" + "x" * 1996 for i in range(300)]
    elements = [
        {"id": f"t{i}", "kind": "text", "x": i, "y": 0, "text": text, "size": 12}
        | {"color": "#000000", "width": 1}
        for i, text in enumerate(texts)
    ]
    await seed(board, *[add(element) for element in elements])
    client = new_client()
    await client.open()
    assert client.welcome["seq"] == 300
    raw = []
    while not raw or json.loads(raw[-1])["more"]:
        raw.append(await client.comm.receive_from())
    frames = [json.loads(text) for text in raw]
    assert len(frames) >= 3
    assert [f["type"] for f in frames] == ["snapshot"] * len(frames)
    assert {f["seq"] for f in frames} == {300}
    assert [f["more"] for f in frames] == [True] * (len(frames) - 1) + [False]
    assert all(len(text.encode()) <= p.FRAME_BUDGET + 100 for text in raw)
    got = [e for f in frames for e in f["elements"]]
    assert [e["id"] for e in got] == [f"t{i}" for i in range(300)]
    assert got[7] == stored(elements[7], v=8, by="Seeder")
    await client.nothing()


async def test_since_replays_exactly_the_ops_after_it(board, connect):
    await seed(board, add(rect("a")), add(rect("b")), update("a", x=5))
    await seed(board, delete("b"), add(rect("c")))
    client = await connect("/ws/boards/team/?since=2")
    assert client.welcome["seq"] == 5
    assert [f["type"] for f in client.state] == ["ops"]
    ops = client.state[0]["ops"]
    assert [(e["seq"], e["op"]) for e in ops] == [
        (3, "update"),
        (4, "delete"),
        (5, "add"),
    ]
    assert ops[0]["set"] == {"x": 5} and ops[1]["ids"] == ["b"]
    assert all(e["sid"] == "seed-conn" and e["by"] == "Seeder" for e in ops)


async def test_since_zero_replays_the_whole_log(board, connect):
    await seed(board, add(rect("a")), add(rect("b")))
    client = await connect("/ws/boards/team/?since=0")
    assert [e["seq"] for e in client.state[0]["ops"]] == [1, 2]


async def test_since_inside_a_multi_seq_undo_replays_only_its_later_entries(
    board, connect
):
    await seed(board, add(rect("a")), add(rect("b")), delete("a", "b"))
    await seed(board, op("undo", "cid-the-undo"))  # seqs 4 and 5
    client = await connect("/ws/boards/team/?since=4")
    [entry] = client.state[0]["ops"]
    assert (entry["seq"], entry["op"], entry["cid"]) == (5, "add", "cid-the-undo")
    assert entry["element"]["id"] == "b"


async def test_since_older_than_the_replay_window_gets_a_snapshot(
    board, connect, settings
):
    settings.WHITEBOARD_MAX_REPLAY = 2
    await seed(board, add(rect("a")), add(rect("b")), add(rect("c")))
    replay = await connect("/ws/boards/team/?since=1")
    assert [e["seq"] for e in replay.state[0]["ops"]] == [2, 3]
    snapshot = await connect("/ws/boards/team/?since=0")
    assert [(f["type"], f["seq"]) for f in snapshot.state] == [("snapshot", 3)]


async def test_since_equal_to_seq_gets_one_empty_ops_frame(board, connect):
    await seed(board, add(rect("a")), add(rect("b")))
    client = await connect("/ws/boards/team/?since=2")
    assert client.state == [{"type": "ops", "ops": []}]
    await client.nothing()


async def test_since_with_the_boards_epoch_replays_and_with_another_gets_a_snapshot(
    board, connect
):
    """PROTOCOL.md 1.1, "Board epoch": a `since` counts in one history."""
    await seed(board, add(rect("a")), add(rect("b")))
    same = await connect(f"/ws/boards/team/?since=1&epoch={board.epoch}")
    assert [f["type"] for f in same.state] == ["ops"]
    assert [op["seq"] for op in same.state[0]["ops"]] == [2]
    for other in ("another-epoch", "", "x" * 500):
        client = await connect(f"/ws/boards/team/?since=1&epoch={other}")
        assert [f["type"] for f in client.state] == ["snapshot"]
        assert [e["id"] for e in client.state[0]["elements"]] == ["a", "b"]
    # An epoch alone asks for nothing: the snapshot, as without it.
    alone = await connect(f"/ws/boards/team/?epoch={board.epoch}")
    assert [f["type"] for f in alone.state] == ["snapshot"]


@pytest.mark.parametrize("since", ["3", "99999999999999999999", "abc", "-1", "1.5", ""])
async def test_unusable_since_gets_the_full_snapshot(board, connect, since):
    await seed(board, add(rect("a")), add(rect("b")))
    client = await connect(f"/ws/boards/team/?since={since}")
    assert client.welcome["seq"] == 2
    assert [(f["type"], f["seq"], f["more"]) for f in client.state] == [
        ("snapshot", 2, False)
    ]
    assert [e["id"] for e in client.state[0]["elements"]] == ["a", "b"]


# == ops ============================================================================


async def test_every_op_is_broadcast_to_everyone_sender_included(board, connect):
    a = await connect()
    b = await connect()
    first = await commit(a, add(rect("r1"), "cid-add-0001"), [b])
    assert first == [
        {
            "op": "add",
            "seq": 1,
            "cid": "cid-add-0001",
            "sid": a.sid,
            "by": a.name,
            "element": stored(rect("r1"), v=1, by=a.name),
        }
    ]
    await commit(b, add(rect("r2")), [a])
    assert await commit(a, update("r1", "cid-upd-0001", x=-5, fill="#ABCDEF"), [b]) == [
        {
            "op": "update",
            "seq": 3,
            "cid": "cid-upd-0001",
            "sid": a.sid,
            "by": a.name,
            "id": "r1",
            "set": {"x": -5, "fill": "#ABCDEF"},
        }
    ]
    assert await commit(b, delete("r2", cid="cid-del-0001"), [a]) == [
        {
            "op": "delete",
            "seq": 4,
            "cid": "cid-del-0001",
            "sid": b.sid,
            "by": b.name,
            "ids": ["r2"],
        }
    ]
    assert await commit(a, op("clear", "cid-clr-0001"), [b]) == [
        {"op": "clear", "seq": 5, "cid": "cid-clr-0001", "sid": a.sid, "by": a.name}
    ]
    assert await board_state(board) == (5, [])


async def test_clear_of_an_empty_board_is_still_committed(board, connect):
    a = await connect()
    assert [e["seq"] for e in await commit(a, op("clear"))] == [1]


async def test_server_sets_v_and_by_whatever_the_client_sent(board, connect):
    a = await connect()
    ops = await commit(a, add(rect("r1", v=999, by="Mallory")))
    assert ops[0]["element"]["v"] == 1
    assert ops[0]["element"]["by"] == a.name
    assert (await board_state(board))[1] == [stored(rect("r1"), v=1, by=a.name)]


async def test_resent_committed_cid_is_acked_to_the_sender_only(board, connect):
    a = await connect()
    b = await connect()
    await commit(a, add(rect("r1")), [b])
    frame = add(rect("r2"))
    await commit(a, frame, [b])
    await a.send(frame)
    assert await a.recv_type("ack") == {"type": "ack", "cid": frame["cid"], "seq": 2}
    await b.quiet()
    assert (await board_state(board))[0] == 2


async def test_undo_resent_is_acked_with_the_last_seq_it_produced(board, connect):
    a = await connect()
    await commit(a, add(rect("r1")))
    await commit(a, add(rect("r2")))
    await commit(a, delete("r1", "r2"))
    undo = op("undo")
    assert [e["seq"] for e in await commit(a, undo)] == [4, 5]
    await a.send(undo)
    assert await a.recv_type("ack") == {"type": "ack", "cid": undo["cid"], "seq": 5}


# == notes (version 1.1) ============================================================


def note(eid, **fields):
    element = {"id": eid, "kind": "note", "x": 100, "y": -50, "w": 240, "h": 160}
    element |= {"text": "", "size": 18, "color": "#222222", "fill": "#fff59d"}
    return {**element, **fields}


def stored_note(element, *, v, by):
    return {"opacity": 1, **element, "v": v, "by": by}


async def test_note_is_broadcast_stored_and_in_a_late_joiners_snapshot(board, connect):
    a = await connect()
    b = await connect()
    ops = await commit(a, add(note("n1", text="call Bob\nat 5")), [b])
    want = stored_note(note("n1", text="call Bob\nat 5"), v=1, by=a.name)
    assert ops[0]["element"] == want
    assert list(ops[0]["element"]) == [
        "id",
        "kind",
        "x",
        "y",
        "w",
        "h",
        "text",
        "size",
        "color",
        "fill",
        "opacity",
        "by",
        "v",
    ]
    update_ops = await commit(b, update("n1", text="", size=24, w=20, h=2000), [a])
    assert update_ops[0]["set"] == {"text": "", "size": 24, "w": 20, "h": 2000}
    edited = stored_note(note("n1", text="", size=24, w=20, h=2000), v=2, by=a.name)
    assert await board_state(board) == (2, [edited])
    late = await connect()
    assert late.state == [
        {"type": "snapshot", "seq": 2, "elements": [edited], "more": False}
    ]
    undone = await commit(a, op("undo"), [b, late])  # undo of the add: a delete
    assert [(e["op"], e["seq"], e["ids"]) for e in undone] == [("delete", 3, ["n1"])]


# Refused by the note's own rules (checked by the invalid-op test below, on a
# board that holds the note n1 and the rect r1).
INVALID_NOTE_OPS = [
    add(note("n9", width=2)),
    add({k: v for k, v in note("n9").items() if k != "fill"}),
    add(note("n9", fill=None)),
    add(note("n9", w=19)),
    add(note("n9", text="x" * 2001)),
    update("n1", width=2),
    update("n1", fill=None),
    update("n1", h=2001),
    update("n1", points=[[0, 0], [1, 1]]),
    update("r1", text="a note's field"),
    update("r1", size=12),
]


async def test_note_draft_is_shown_to_others(board, connect):
    a = await connect()
    b = await connect()
    await a.send({"type": "draft", "element": note("d1")})
    frame = await b.recv_type("draft")
    assert frame == {
        "type": "draft",
        "sid": a.sid,
        "element": {**note("d1"), "opacity": 1},
    }


# == errors =========================================================================

BAD_FRAMES = [
    ("not json", "bad_json", None),
    ("[1, 2]", "bad_json", None),
    ('"add"', "bad_json", None),
    ("", "bad_json", None),
    ('{"type": "add", "cid": "cid-00000001", "element": NaN}', "bad_json", None),
    (
        '{"type": "ping", "cid": "cid-00000001", "t": "\\ud800"}',
        "bad_json",
        "cid-00000001",
    ),
    ('{"cid": "cid-00000001"}', "bad_message", "cid-00000001"),
    ('{"type": 3, "cid": "cid-00000001"}', "bad_message", "cid-00000001"),
    ('{"type": "explode", "cid": "cid-00000001"}', "unknown_type", "cid-00000001"),
    ('{"type": "welcome"}', "unknown_type", None),
    ('{"type": "add", "cid": "short", "element": {}}', "bad_message", "short"),
    ('{"type": "add", "element": {}}', "bad_message", None),
    ('{"type": "clear", "cid": "cid-00000001", "x": 1}', "bad_message", "cid-00000001"),
    ('{"type": "cursor", "x": 1}', "bad_message", None),
    ('{"type": "cursor", "x": 1, "y": true}', "bad_message", None),
]


@pytest.mark.parametrize(("text", "code", "cid"), BAD_FRAMES)
async def test_bad_frame_is_refused_to_sender_and_changes_nothing(
    board, connect, text, code, cid
):
    a = await connect()
    b = await connect()
    await a.recv_type("joined")
    if text:
        await a.send_text(text)
    else:  # the communicator refuses to send an empty frame
        await a.comm.send_input({"type": "websocket.receive", "text": ""})
    await error(a, code, cid)
    await asyncio.gather(a.nothing(), b.nothing())
    assert await board_state(board) == (0, [])


INVALID_OPS = [
    add({**rect("r9"), "points": [[0, 0], [1, 1]]}),
    add({**rect("r9"), "shadow": True}),
    add(rect("r9", width=0)),
    add(rect("r9", x=True)),
    add(rect("r9", color="red")),
    {**add(rect("r9")), "extra": 1},
    update("r1", v=3),
    update("r1", id="r2"),
    update("r1", points=[[0, 0], [1, 1]]),
    update("r1"),
    delete(),
    delete("not an id"),
]


@pytest.mark.parametrize("frame", INVALID_OPS + INVALID_NOTE_OPS)
async def test_invalid_op_is_bad_message_with_cid_and_changes_nothing(
    board, connect, frame
):
    await seed(board, add(note("n1")), add(rect("r1")))
    before = await board_state(board)
    a = await connect()
    b = await connect()
    await a.send(frame)
    await error(a, "bad_message", frame["cid"])
    await b.quiet()
    assert await board_state(board) == before


async def test_binary_frame_is_bad_message(board, connect):
    a = await connect()
    await a.comm.send_to(bytes_data=b'{"type": "ping"}')
    await error(a, "bad_message")


async def test_update_or_delete_of_a_missing_element_is_not_found(board, connect):
    await seed(board, add(rect("r1")), delete("r1"))
    a = await connect()
    b = await connect()
    for frame in (update("r1", x=1), update("nope", x=1), delete("r1", "nope")):
        await a.send(frame)
        await error(a, "not_found", frame["cid"])
    await b.quiet()
    assert await board_state(board) == (2, [])


async def test_delete_with_some_missing_ids_erases_the_others(board, connect):
    await seed(board, add(rect("r1")), add(rect("r2")), add(rect("r3")))
    a = await connect()
    ops = await commit(a, delete("gone", "r3", "r1", "r3"))
    assert ops[0]["ids"] == ["r3", "r1"]
    assert [e["id"] for e in (await board_state(board))[1]] == ["r2"]


async def test_element_id_is_never_reused_even_after_delete(board, connect):
    a = await connect()
    await commit(a, add(rect("r1")))
    frame = add(rect("r1", x=1))
    await a.send(frame)
    await error(a, "exists", frame["cid"])
    await commit(a, delete("r1"))
    frame = add(rect("r1", x=2))
    await a.send(frame)
    await error(a, "exists", frame["cid"])
    assert await board_state(board) == (2, [])


async def test_add_past_max_elements_is_board_full(board, connect, settings):
    limits(settings, max_elements=2)
    a = await connect()
    b = await connect()
    assert a.welcome["limits"]["max_elements"] == 2
    await commit(a, add(rect("r1")), [b])
    await commit(a, add(rect("r2")), [b])
    frame = add(rect("r3"))
    await a.send(frame)
    await error(a, "board_full", frame["cid"])
    await b.quiet()
    await commit(a, delete("r1"), [b])
    await commit(a, add(rect("r4")), [b])
    assert [e["id"] for e in (await board_state(board))[1]] == ["r2", "r4"]


@pytest.fixture
async def viewer_board(board):
    await set_board(board, visitor_role="viewer")
    await seed(board, add(rect("r1")))
    return board


@pytest.mark.parametrize(
    "frame",
    [
        add(rect("r2")),
        update("r1", x=1),
        delete("r1"),
        op("clear"),
        op("undo"),
        op("redo"),
        add(rect("r2", width=0)),  # forbidden comes before field validation
        update("nope", x=1),  # ... and before not_found
        add(rect("r1")),  # ... and exists
    ],
)
async def test_viewer_ops_are_forbidden(viewer_board, connect, frame):
    viewer = await connect()
    other = await connect()
    assert viewer.welcome["board"]["role"] == "viewer"
    await viewer.send(frame)
    await error(viewer, "forbidden", frame["cid"])
    await other.quiet()
    assert (await board_state(viewer_board))[0] == 1


async def test_viewer_drafts_are_forbidden_but_cursors_go_through(
    viewer_board, connect
):
    viewer = await connect()
    other = await connect()
    await viewer.send({"type": "draft", "element": rect("d1")})
    await error(viewer, "forbidden")
    await viewer.send({"type": "cursor", "x": 3, "y": 4})
    frame = await other.recv_type("cursors")
    assert frame == {
        "type": "cursors",
        "cursors": [{"sid": viewer.sid, "x": 3, "y": 4}],
    }


async def test_locked_board_refuses_ops_and_drafts_even_to_its_owner(
    private_board, owner, connect
):
    await seed(private_board, add(rect("r1")))
    await set_board(private_board, locked=True)
    headers = await database_sync_to_async(session_headers)(owner)
    client = await connect("/ws/boards/secret/", headers)
    assert client.welcome["board"] == {
        "epoch": private_board.epoch,
        "slug": "secret",
        "title": "Secret",
        "role": "owner",
        "locked": True,
    }
    for frame in (add(rect("r2")), update("r1", x=1), op("clear"), op("undo")):
        await client.send(frame)
        await error(client, "forbidden", frame["cid"])
    await client.send({"type": "draft", "element": rect("d1")})
    await error(client, "forbidden")
    assert (await board_state(private_board))[0] == 1


async def replies(client, entries, others):
    """Read until `entries` op entries and `others` other frames (acks, errors)."""
    ops, rest = [], []
    while len(ops) < entries or len(rest) < others:
        frame = (await client.recv_all(1))[0]
        (ops.extend(frame["ops"]) if frame["type"] == "ops" else rest.append(frame))
    assert (len(ops), len(rest)) == (entries, others), (ops, rest)
    return ops, rest


async def test_ops_over_the_rate_are_refused_and_not_applied(board, connect, settings):
    limits(settings, ops_per_second=2)
    a = await connect()
    b = await connect()
    frames = [add(rect(f"r{i}")) for i in range(5)]
    for frame in frames:
        await a.send(frame)
    ops, errors = await replies(a, 2, 3)
    assert [e["cid"] for e in ops] == [frames[0]["cid"], frames[1]["cid"]]
    assert [(f["code"], f["cid"]) for f in errors] == [
        ("rate_limited", frame["cid"]) for frame in frames[2:]
    ]
    assert (await replies(b, 2, 0))[0] == ops
    await asyncio.gather(a.quiet(), b.quiet())
    assert [e["id"] for e in (await board_state(board))[1]] == ["r0", "r1"]


async def test_resend_of_committed_cid_over_the_rate_is_acked(board, connect, settings):
    limits(settings, ops_per_second=2)
    a = await connect()
    first, second = add(rect("r1")), add(rect("r2"))
    burst = [first, second, add(rect("r3")), first, add(rect("r4"))]
    for frame in burst:
        await a.send(frame)
    ops, rest = await replies(a, 2, 3)
    assert [e["cid"] for e in ops] == [first["cid"], second["cid"]]
    assert {(f["type"], f.get("code"), f["cid"]) for f in rest} == {
        ("error", "rate_limited", burst[2]["cid"]),
        ("ack", None, first["cid"]),
        ("error", "rate_limited", burst[4]["cid"]),
    }
    assert next(f for f in rest if f["type"] == "ack")["seq"] == 1


async def test_resend_of_committed_cid_does_not_use_up_the_rate(
    board, connect, settings
):
    """ "An already committed cid → ack (not counted against the rate)": a client
    that reconnects and resends an op it is unsure of may send a new one at once."""
    limits(settings, ops_per_second=2)
    a = await connect()
    first = add(rect("r1"))
    await commit(a, first)  # one token of two left (refilling at 2 per second)
    fresh = add(rect("r2"))
    await a.send(first)
    await a.send(fresh)
    got = await a.recv_all(2)
    assert sorted(f["type"] for f in got) == ["ack", "ops"], got
    assert [e["cid"] for f in got if f["type"] == "ops" for e in f["ops"]] == [
        fresh["cid"]
    ]


async def test_checks_run_in_protocol_order(board, connect, settings):
    """bad_json, type, cid, committed cid → ack, rate_limited, forbidden, fields."""
    limits(settings, ops_per_second=1)
    await seed(board, add(rect("r1"), "cid-seeded-1"))
    await set_board(board, locked=True)
    a = await connect()
    # An already committed cid is acked even though the board is now locked and
    # the frame is malformed.
    await a.send(add(rect("r1", width=0), "cid-seeded-1"))
    assert await a.recv_type("ack") == {"type": "ack", "cid": "cid-seeded-1", "seq": 1}
    # Locked board, bad fields: forbidden wins over bad_message (uses the token).
    frame = update("nope", x=True)
    await a.send(frame)
    await error(a, "forbidden", frame["cid"])
    # Over the rate: rate_limited wins over forbidden.
    frame = update("nope", x=True)
    await a.send(frame)
    await error(a, "rate_limited", frame["cid"])
    # Before any of those: an unknown type, a bad cid, bad JSON.
    await a.send({"type": "nope", "cid": 5})
    await error(a, "unknown_type")
    await a.send({"type": "undo", "cid": "bad cid"})
    await error(a, "bad_message", "bad cid")


async def test_field_validation_comes_before_not_found(board, connect):
    a = await connect()
    frame = update("nope", x="far")
    await a.send(frame)
    await error(a, "bad_message", frame["cid"])
    frame = delete("nope", "bad id!")
    await a.send(frame)
    await error(a, "bad_message", frame["cid"])


async def test_update_with_a_field_of_another_kind_is_bad_message(board, connect):
    await seed(board, add(rect("r1")))
    a = await connect()
    frame = update("r1", text="hello")
    await a.send(frame)
    await error(a, "bad_message", frame["cid"])
    assert (await board_state(board))[0] == 1


async def test_nothing_to_undo_and_nothing_to_redo(board, connect):
    await seed(board, add(rect("r1")))  # someone else's op
    a = await connect()
    b = await connect()
    undo, redo = op("undo"), op("redo")
    await a.send(undo)
    await error(a, "nothing_to_undo", undo["cid"])
    await a.send(redo)
    await error(a, "nothing_to_redo", redo["cid"])
    await b.quiet()
    assert (await board_state(board))[0] == 1


# == undo and redo ==================================================================


async def test_undo_history_is_per_user(board, connect):
    a = await connect()
    b = await connect()
    await commit(a, add(rect("a1")), [b])
    await commit(b, add(rect("b1")), [a])
    await commit(a, add(rect("a2")), [b])
    undo = op("undo")
    assert await commit(b, undo, [a]) == [
        {"op": "delete", "seq": 4, "cid": undo["cid"], "sid": b.sid, "by": b.name}
        | {"ids": ["b1"]}
    ]
    assert (await commit(a, op("undo"), [b]))[0]["ids"] == ["a2"]
    assert (await commit(a, op("undo"), [b]))[0]["ids"] == ["a1"]
    undo = op("undo")
    await b.send(undo)
    await error(b, "nothing_to_undo", undo["cid"])


async def test_undo_history_follows_the_account_across_tabs(board, make_user, connect):
    user = await database_sync_to_async(make_user)("tabby")
    headers = await database_sync_to_async(session_headers)(user)
    tab1 = await connect(headers=headers)
    tab2 = await connect(headers=headers)
    guest = await connect()
    await commit(tab1, add(rect("r1")), [tab2, guest])
    undo = op("undo")
    await guest.send(undo)
    await error(guest, "nothing_to_undo", undo["cid"])
    ops = await commit(tab2, op("undo"), [tab1])
    assert (ops[0]["op"], ops[0]["ids"], ops[0]["sid"]) == ("delete", ["r1"], tab2.sid)


async def test_undo_history_follows_the_guest_session_across_tabs(board, connect):
    session = await database_sync_to_async(guest_session)("Gwen")
    tab1 = await connect(headers=[ORIGIN, session])
    tab2 = await connect(headers=[ORIGIN, session])
    assert tab1.name == tab2.name == "Gwen"
    await commit(tab1, add(rect("r1")), [tab2])
    ops = await commit(tab2, op("undo"), [tab1])
    assert (ops[0]["op"], ops[0]["ids"]) == ("delete", ["r1"])


async def test_undo_of_add_deletes_and_redo_adds_it_back(board, connect):
    a = await connect()
    b = await connect()
    await commit(a, add(rect("r1")), [b])
    await commit(a, add(rect("r2")), [b])
    assert (await commit(a, op("undo"), [b]))[0]["ids"] == ["r2"]
    redo = op("redo")
    assert await commit(a, redo, [b]) == [
        {"op": "add", "seq": 4, "cid": redo["cid"], "sid": a.sid, "by": a.name}
        | {"element": stored(rect("r2"), v=4, by=a.name)}
    ]
    assert [e["id"] for e in (await board_state(board))[1]] == ["r1", "r2"]


async def test_undo_of_update_sets_the_earlier_values_and_redo_sets_them_again(
    board, connect
):
    a = await connect()
    await commit(a, add(rect("r1")))
    await commit(a, update("r1", x=50, fill="#ff0000", opacity=0.5))
    undo = op("undo")
    assert await commit(a, undo) == [
        {"op": "update", "seq": 3, "cid": undo["cid"], "sid": a.sid, "by": a.name}
        | {"id": "r1", "set": {"x": 10, "fill": None, "opacity": 1}}
    ]
    assert (await commit(a, op("redo")))[0]["set"] == {
        "x": 50,
        "fill": "#ff0000",
        "opacity": 0.5,
    }


async def test_successive_updates_are_undone_one_by_one(board, connect):
    """Moving a shape twice and pressing undo twice puts it back where it was."""
    a = await connect()
    await commit(a, add(rect("r1", x=10)))
    await commit(a, update("r1", x=20))
    await commit(a, update("r1", x=30))
    first = await commit(a, op("undo"))
    assert [(e["op"], e.get("set")) for e in first] == [("update", {"x": 20})]
    second = await commit(a, op("undo"))
    assert [(e["op"], e.get("set")) for e in second] == [("update", {"x": 10})]
    assert (await board_state(board))[1][0]["x"] == 10
    assert (await commit(a, op("redo")))[0]["set"] == {"x": 20}
    assert (await commit(a, op("redo")))[0]["set"] == {"x": 30}
    assert (await board_state(board))[1][0]["x"] == 30


async def test_undo_of_clear_restores_each_element_with_its_author_and_place(
    board, connect
):
    a = await connect()
    b = await connect()
    await commit(a, add(rect("a1")), [b])
    await commit(b, add(rect("b1")), [a])
    await commit(a, add(rect("a2")), [b])
    await commit(b, op("clear"), [a])
    await commit(a, add(rect("a3")), [b])  # after the clear: stays on top
    undo = op("undo")
    await b.send(undo)
    frame = await b.recv_type("ops")  # one frame, consecutive seqs
    assert await a.recv_type("ops") == frame
    head = {"op": "add", "cid": undo["cid"], "sid": b.sid, "by": b.name}
    assert frame["ops"] == [
        head | {"seq": 6, "element": stored(rect("a1"), v=6, by=a.name)},
        head | {"seq": 7, "element": stored(rect("b1"), v=7, by=b.name)},
        head | {"seq": 8, "element": stored(rect("a2"), v=8, by=a.name)},
    ]
    late = await connect()
    elements = late.state[0]["elements"]
    assert [(e["id"], e["by"], e["v"]) for e in elements] == [
        ("a1", a.name, 6),
        ("b1", b.name, 7),
        ("a2", a.name, 8),
        ("a3", a.name, 5),
    ]


async def test_undo_of_delete_adds_back_only_the_erased_elements(board, connect):
    a = await connect()
    for eid in ("r1", "r2", "r3"):
        await commit(a, add(rect(eid)))
    await commit(a, delete("r3", "r1"))
    ops = await commit(a, op("undo"))
    assert [(e["op"], e["seq"], e["element"]["id"]) for e in ops] == [
        ("add", 5, "r1"),
        ("add", 6, "r3"),
    ]
    assert (await commit(a, op("redo")))[0]["ids"] == ["r3", "r1"]  # as sent


async def test_redo_of_clear_deletes_the_erased_elements_that_still_exist(
    board, connect
):
    a = await connect()
    b = await connect()
    await commit(a, add(rect("r1")), [b])
    await commit(a, add(rect("r2")), [b])
    await commit(a, op("clear"), [b])
    await commit(a, op("undo"), [b])
    await commit(b, delete("r1"), [a])
    redo = op("redo")
    assert await commit(a, redo, [b]) == [
        {"op": "delete", "seq": 7, "cid": redo["cid"], "sid": a.sid, "by": a.name}
        | {"ids": ["r2"]}
    ]


async def test_a_new_op_empties_the_redo_list(board, connect):
    a = await connect()
    await commit(a, add(rect("r1")))
    await commit(a, add(rect("r2")))
    await commit(a, op("undo"))
    await commit(a, op("undo"))
    await commit(a, op("redo"))  # r1 back; r2's add still redoable
    await commit(a, add(rect("r3")))
    redo = op("redo")
    await a.send(redo)
    await error(a, "nothing_to_redo", redo["cid"])
    assert [e["id"] for e in (await board_state(board))[1]] == ["r1", "r3"]


async def test_another_users_op_leaves_my_redo_list_alone(board, connect):
    a = await connect()
    b = await connect()
    await commit(a, add(rect("r1")), [b])
    await commit(a, op("undo"), [b])
    await commit(b, add(rect("b1")), [a])
    assert (await commit(a, op("redo"), [b]))[0]["element"]["id"] == "r1"


async def test_undo_restores_only_fields_nobody_else_changed_since(board, connect):
    a = await connect()
    b = await connect()
    await commit(a, add(rect("r1")), [b])
    await commit(a, update("r1", x=50, color="#ff0000"), [b])
    await commit(b, update("r1", x=99), [a])
    assert (await commit(a, op("undo"), [b]))[0]["set"] == {"color": "#112233"}
    assert (await board_state(board))[1] == [stored(rect("r1", x=99), v=4, by=a.name)]


async def test_undo_skips_an_entry_with_nothing_left_to_revert(board, connect):
    a = await connect()
    b = await connect()
    await commit(a, add(rect("r1")), [b])
    await commit(a, add(rect("r2")), [b])
    await commit(a, update("r2", x=1), [b])
    await commit(b, delete("r2"), [a])
    ops = await commit(a, op("undo"), [b])  # update and add of r2: nothing left
    assert [(e["op"], e["ids"]) for e in ops] == [("delete", ["r1"])]
    undo = op("undo")
    await a.send(undo)
    await error(a, "nothing_to_undo", undo["cid"])


async def test_undo_that_would_overfill_the_board_is_board_full(
    board, connect, settings
):
    limits(settings, max_elements=2)
    a = await connect()
    b = await connect()
    await commit(a, add(rect("a1")), [b])
    await commit(a, add(rect("a2")), [b])
    await commit(a, delete("a1", "a2"), [b])
    await commit(b, add(rect("b1")), [a])
    before = await board_state(board)
    undo = op("undo")
    await a.send(undo)
    await error(a, "board_full", undo["cid"])
    await b.quiet()
    assert await board_state(board) == before
    await commit(b, delete("b1"), [a])
    assert len(await commit(a, op("undo"), [b])) == 2


# == closing on abuse ===============================================================


async def test_101st_refused_frame_within_a_minute_is_answered_then_closed_1008(
    board, connect
):
    a = await connect()
    b = await connect()
    for _ in range(100):
        await a.send_text("nope")
    for _ in range(100):
        assert (await a.recv_type("error"))["code"] == "bad_json"
    await a.nothing()
    await a.send({"type": "undo", "cid": "cid-the-101st"})
    code, frames = await a.closed()
    assert code == 1008
    assert [json.loads(f["text"])["code"] for f in frames] == ["nothing_to_undo"]
    assert await b.recv_type("left") == {"type": "left", "sid": a.sid}


@pytest.fixture
def small_frames(settings):
    limits(settings, max_frame_bytes=1000)


def ping_of_bytes(size):
    """A ping frame of exactly `size` UTF-8 bytes, mostly two-byte characters."""
    head = '{"type":"ping","pad":"'
    room = size - len(head) - 2
    text = head + "é" * (room // 2) + "a" * (room % 2) + '"}'
    assert len(text.encode()) == size and len(text) < size * 0.6
    return text


async def test_frame_of_exactly_max_frame_bytes_is_read(board, connect, small_frames):
    a = await connect()
    assert a.welcome["limits"]["max_frame_bytes"] == 1000
    await a.send_text(ping_of_bytes(1000))
    pong = await a.recv_type("pong")
    assert len(pong["pad"].encode()) == 1000 - len('{"type":"ping","pad":""}')


async def test_frame_over_max_frame_bytes_closes_1009_without_error(
    board, connect, small_frames
):
    a = await connect()
    b = await connect()
    await a.recv_type("joined")
    await a.send_text(ping_of_bytes(1001))  # 1001 bytes, ~520 characters
    assert await a.closed() == (1009, [])
    await a.close()  # the client answers the close handshake
    assert await b.recv_type("left") == {"type": "left", "sid": a.sid}


async def test_binary_frame_over_max_frame_bytes_closes_1009(
    board, connect, small_frames
):
    a = await connect()
    await a.comm.send_to(bytes_data=b"x" * 1001)
    assert await a.comm.receive_output() == {"type": "websocket.close", "code": 1009}


# == volatile messages ==============================================================


async def test_cursors_reach_others_never_their_owner_and_only_when_moved(
    board, connect
):
    a = await connect()
    b = await connect()
    await a.recv_type("joined")
    await a.send({"type": "cursor", "x": 1, "y": 2})
    assert await b.recv() == {
        "type": "cursors",
        "cursors": [{"sid": a.sid, "x": 1, "y": 2}],
    }
    await a.nothing()
    await b.send({"type": "cursor", "x": -3.5, "y": 4})
    assert await a.recv() == {
        "type": "cursors",
        "cursors": [{"sid": b.sid, "x": -3.5, "y": 4}],
    }
    await a.send({"type": "cursor", "x": 5, "y": 6})
    await a.send({"type": "cursor", "x": 7, "y": 8})  # only the latest counts
    assert await b.recv() == {
        "type": "cursors",
        "cursors": [{"sid": a.sid, "x": 7, "y": 8}],
    }
    await asyncio.gather(a.nothing(), b.nothing())


async def test_cursor_out_of_range_is_bad_message(board, connect):
    a = await connect()
    await a.send({"type": "cursor", "x": 1_000_001, "y": 0})
    await error(a, "bad_message")


async def test_draft_is_shown_to_others_then_withdrawn(board, connect):
    a = await connect()
    b = await connect()
    await a.recv_type("joined")
    dot = {"id": "s1", "kind": "stroke", "x": 5, "y": 5, "points": [[0, 0]]}
    dot |= {"color": "#000000", "width": 3, "v": 7, "by": "Mallory"}
    await a.send({"type": "draft", "element": dot})
    assert await b.recv() == {
        "type": "draft",
        "sid": a.sid,
        "element": {
            "id": "s1",
            "kind": "stroke",
            "x": 5,
            "y": 5,
            "points": [[0, 0]],
            "color": "#000000",
            "width": 3,
            "fill": None,
            "opacity": 1,
        },
    }
    await a.send({"type": "draft", "element": None})
    assert await b.recv() == {"type": "draft", "sid": a.sid, "element": None}
    await a.nothing()


async def test_one_point_stroke_is_a_valid_draft_but_not_a_valid_add(board, connect):
    a = await connect()
    dot = {"id": "s1", "kind": "stroke", "x": 5, "y": 5, "points": [[0, 0]]}
    dot |= {"color": "#000000", "width": 3}
    frame = add(dot)
    await a.send(frame)
    await error(a, "bad_message", frame["cid"])


async def test_invalid_draft_is_bad_message_and_not_shown(board, connect):
    a = await connect()
    b = await connect()
    await a.send({"type": "draft", "element": rect("d1", w="wide")})
    await error(a, "bad_message")
    await b.quiet()


async def test_joined_and_left_go_to_others_only(board, connect):
    a = await connect()
    b = await connect()
    assert await a.recv() == {"type": "joined", "user": b.welcome["you"]}
    await b.nothing()
    c = await connect()
    assert await a.recv() == {"type": "joined", "user": c.welcome["you"]}
    assert await b.recv() == {"type": "joined", "user": c.welcome["you"]}
    await c.nothing()
    await b.close()
    assert await a.recv() == {"type": "left", "sid": b.sid}
    assert await c.recv() == {"type": "left", "sid": b.sid}


async def test_when_a_drafts_author_leaves_others_get_left(board, connect):
    a = await connect()
    b = await connect()
    await a.send({"type": "draft", "element": rect("d1")})
    assert (await b.recv_type("draft"))["sid"] == a.sid
    await a.close()
    assert await b.recv() == {"type": "left", "sid": a.sid}
    await b.nothing()
    late = await connect()
    assert late.welcome["users"] == [b.welcome["you"]]


# == heartbeat ======================================================================


async def test_ping_is_answered_at_once_with_its_extra_fields(board, connect):
    a = await connect()
    b = await connect()
    await a.recv_type("joined")
    extra = {"n": 7, "t": "é", "nested": {"list": [1, None, True]}, "cid": "x"}
    await a.send({"type": "ping", **extra})
    assert await a.recv() == {"type": "pong", **extra}
    await a.send({"type": "ping"})
    assert await a.recv() == {"type": "pong"}
    await b.nothing()


async def test_silent_client_is_closed_4408_while_a_pinging_one_stays(
    board, connect, settings
):
    limits(settings, heartbeat_seconds=1)
    loop = asyncio.get_running_loop()
    pinger = await connect()
    start = loop.time()
    silent = await connect()
    joined = loop.time()
    closing = asyncio.create_task(silent.closed(timeout=6))
    closed_at = []
    closing.add_done_callback(lambda _: closed_at.append(loop.time()))
    n = 0
    while not closing.done() or loop.time() - start < 3.6:
        n += 1
        await pinger.send({"type": "ping", "n": n})
        assert await pinger.recv_type("pong") == {"type": "pong", "n": n}
        await asyncio.wait({closing}, timeout=0.5)  # a client's ping interval
    code, frames = closing.result()
    assert code == 4408 and frames == []
    assert 2.9 <= closed_at[0] - joined <= 4.0  # 3 x heartbeat_seconds
    # `left` is sent before the close, so it comes before this pong.
    await pinger.send({"type": "ping", "n": 0})
    assert await pinger.recv_type("pong") == {"type": "pong", "n": 0}
    assert {"type": "left", "sid": silent.sid} in pinger.skipped
