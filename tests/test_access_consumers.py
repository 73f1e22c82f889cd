"""Access on open sockets: members, share links, and changes that apply live."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.sessions.backends.db import SessionStore

from tests.conftest import ORIGIN, session_headers
from whiteboard import access, services
from whiteboard.models import Board, Membership, Presence, Role

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async


def rect(eid):
    return {
        "id": eid,
        "kind": "rect",
        "x": 0,
        "y": 0,
        "w": 5,
        "h": 5,
        "color": "#000000",
        "width": 1,
    }


def add(eid):
    return {"type": "add", "cid": f"cid-add-{eid}", "element": rect(eid)}


@pytest.fixture
def owner(make_user):
    return make_user("olga")


@pytest.fixture
def member(make_user):
    return make_user("mia")


@pytest.fixture
def plans(owner):
    return services.board_create(
        slug="plans", title="Plans", owner=owner, is_public=False
    )


PLANS = "/ws/boards/plans/"


def link_session(board, role):
    """Cookie header of a guest session holding a share key of `role`."""
    _, key = services.share_link_create(board=board, role=role)
    store = SessionStore()
    access.remember_key(store, board, key)
    store.create()
    return [ORIGIN, (b"cookie", f"sessionid={store.session_key}".encode())]


async def forbidden_then_4403(client):
    code, before = await client.closed()
    assert code == 4403
    assert '"code":"forbidden"' in before[-1]["text"].replace(" ", "")


@pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER, Role.OWNER])
async def test_private_board_admits_a_member_with_their_role(
    plans, member, role, connect
):
    await run(services.member_set)(board=plans, user=member, role=role)
    client = await connect(PLANS, headers=await run(session_headers)(member))
    assert client.welcome["board"]["role"] == role


@pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER])
async def test_share_key_in_the_session_admits_a_guest_with_its_role(
    plans, role, connect
):
    client = await connect(PLANS, headers=await run(link_session)(plans, role))
    assert client.welcome["board"]["role"] == role


async def test_viewer_by_link_gets_forbidden_for_ops(plans, connect):
    client = await connect(PLANS, headers=await run(link_session)(plans, Role.VIEWER))
    await client.send(add("a"))
    error = await client.recv_type("error")
    assert (error["code"], error["cid"]) == ("forbidden", "cid-add-a")


async def test_demoted_editor_is_told_and_their_next_op_is_forbidden(
    plans, owner, member, connect
):
    await run(services.member_set)(board=plans, user=member, role=Role.EDITOR)
    client = await connect(PLANS, headers=await run(session_headers)(member))
    await run(services.member_set)(board=plans, user=member, role=Role.VIEWER)
    frame = await client.recv_type("board")
    assert frame["board"] == {
        "slug": "plans",
        "title": "Plans",
        "role": "viewer",
        "locked": False,
    }
    await client.send(add("late"))
    assert (await client.recv_type("error"))["code"] == "forbidden"
    presence = await run(Presence.objects.get)(sid=client.sid)
    assert presence.role == "viewer", "the admin's who-is-on list shows the new role"


async def test_removed_member_is_cut_off_with_4403_and_others_stay(
    plans, owner, member, connect
):
    await run(services.member_set)(board=plans, user=member, role=Role.EDITOR)
    mia = await connect(PLANS, headers=await run(session_headers)(member))
    olga = await connect(PLANS, headers=await run(session_headers)(owner))
    membership = await run(Membership.objects.get)(user=member)
    await run(services.member_remove)(membership=membership)
    await forbidden_then_4403(mia)
    assert (await olga.recv_type("left"))["sid"] == mia.sid
    await olga.send(add("still-here"))
    assert (await olga.recv_type("ops"))["ops"][0]["cid"] == "cid-add-still-here"


async def test_revoked_link_cuts_its_holders_off(plans, connect):
    headers = await run(link_session)(plans, Role.EDITOR)
    guest = await connect(PLANS, headers=headers)
    link = await run(plans.share_links.get)()
    await run(services.share_link_revoke)(link=link)
    await forbidden_then_4403(guest)
    again = await connect(PLANS, headers=headers, state=False)
    assert again.welcome["code"] == "login_required", "a guest again, without it"


async def test_making_a_board_private_cuts_off_guests_but_not_members(
    owner, member, connect
):
    board = await run(services.board_create)(slug="team", title="Team", owner=owner)
    await run(services.member_set)(board=board, user=member, role=Role.EDITOR)
    guest = await connect()
    mia = await connect(headers=await run(session_headers)(member))
    board.is_public = False
    await run(services.board_update_settings)(board=board, fields=["is_public"])
    await forbidden_then_4403(guest)
    await mia.send(add("m"))
    assert (await mia.recv_type("ops"))["ops"][0]["cid"] == "cid-add-m"


async def test_visitors_made_viewers_get_a_board_frame_with_the_new_role(
    owner, connect
):
    board = await run(services.board_create)(slug="team", title="Team", owner=owner)
    guest = await connect()
    board.visitor_role = Role.VIEWER
    await run(services.board_update_settings)(board=board, fields=["visitor_role"])
    assert (await guest.recv_type("board"))["board"]["role"] == "viewer"
    await guest.send({"type": "draft", "element": rect("d")})
    assert (await guest.recv_type("error"))["code"] == "forbidden"


async def test_a_change_that_leaves_a_connection_as_it_was_sends_nothing(
    plans, owner, member, connect
):
    olga = await connect(PLANS, headers=await run(session_headers)(owner))
    await run(services.member_set)(board=plans, user=member, role=Role.VIEWER)
    # The owner's role, title and lock are unchanged: no board frame. Her own
    # op afterwards is the next thing she receives.
    await olga.send(add("o"))
    assert (await olga.recv_all(1))[0]["type"] == "ops"


async def test_deleting_a_board_closes_its_sockets_with_not_found_4404(
    plans, owner, connect
):
    olga = await connect(PLANS, headers=await run(session_headers)(owner))
    await run(services.board_delete)(board=plans)
    code, before = await olga.closed()
    assert code == 4404
    assert '"code":"not_found"' in before[-1]["text"].replace(" ", "")
    assert not await run(Board.objects.filter(slug="plans").exists)()


async def test_moderator_kick_closes_every_socket_with_4403(board, connect):
    a, b = await connect(), await connect()
    await run(services.board_disconnect_all)(board=board)
    for client in (a, b):
        code, before = await client.closed()
        assert code == 4403
        assert "moderator" in before[-1]["text"]
