"""The board admin: its changelist, and actions that reach connected clients."""

import re

import pytest
from channels.db import database_sync_to_async
from django.contrib.admin.templatetags.admin_list import result_headers, results
from django.contrib.auth.models import Permission
from django.test import Client as HttpClient
from django.utils.html import strip_tags

from tests.conftest import session_headers
from tests.test_access_consumers import link_session
from whiteboard import protocol as p
from whiteboard import services
from whiteboard.changes import OpRequest
from whiteboard.identity import Author
from whiteboard.models import Board, Membership, Role
from whiteboard.services import current_limits

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/whiteboard/board/"
SEEDER = Author(sid="seed-conn", by="Seeder", actor="conn:seed-conn")


def rect(eid):
    return {"id": eid, "kind": "rect", "x": 0, "y": 0, "w": 1, "h": 1}


def seed(board, *ids):
    """Add elements through the engine, as a client would have."""
    limits = current_limits()
    requests = []
    for eid in ids:
        element = p.validate_element(
            rect(eid) | {"color": "#000000", "width": 1}, limits
        )
        cid = f"cid-seed-{eid}"
        requests.append(OpRequest(cid, "add", SEEDER, p.AddOp(cid, element)))
    services.ops_commit(board_id=board.pk, requests=requests, limits=limits)


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser(
        "root", "root@example.com", "x", first_name="Ada", last_name="Admin"
    )


@pytest.fixture
def admin_http(staff):
    http = HttpClient()
    http.force_login(staff)
    return http


@pytest.fixture
def olga(django_user_model):
    return django_user_model.objects.create_user("olga", "olga@example.com", "x")


@pytest.fixture
def boards(olga):
    team = services.board_create(slug="team", title="Team board", owner=olga)
    seed(team, "a", "b", "c")
    services.board_create(slug="plans", title="Secret plans", is_public=False)
    Board.objects.filter(slug="plans").update(locked=True)
    return team


def run_action(http, action, *slugs):
    pks = [Board.objects.get(slug=slug).pk for slug in slugs]
    return http.post(CHANGELIST, {"action": action, "_selected_action": pks})


async def save_change_form(http, board, **changes):
    """Post the board's change form as staff would: its settings, with `changes`
    (a checkbox left unticked is simply absent from the form)."""
    data = {"title": board.title, "owner": board.owner_id}
    data |= {"visitor_role": board.visitor_role, "is_public": "on"} | changes
    data = {key: value for key, value in data.items() if value is not None}
    data = no_inline_changes() | data
    url = f"{CHANGELIST}{board.pk}/change/"
    response = await database_sync_to_async(http.post)(url, data)
    assert response.status_code == 302


INLINES = ("members", "share_links", "presence")


def no_inline_changes():
    """The management forms of the change form's inlines, with no rows in them."""
    data = {}
    for prefix in INLINES:
        data |= {f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0}
    return data


def follow_messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


# -- actions that reach connected clients ------------------------------------------


async def test_admin_clear_reaches_every_client_as_an_op_without_sid(
    boards, admin_http, connect
):
    a = await connect()
    b = await connect()
    response = await database_sync_to_async(run_action)(
        admin_http, "clear_boards", "team"
    )
    assert response.status_code == 302
    frame = await a.recv_type("ops")
    assert await b.recv_type("ops") == frame
    [entry] = frame["ops"]
    assert entry == {
        "op": "clear",
        "seq": 4,
        "cid": entry["cid"],
        "sid": None,
        "by": "Ada Admin",
    }
    assert p.CID_RE.fullmatch(entry["cid"])
    assert not entry["cid"].startswith("cid-seed-")
    late = await connect()
    assert late.state == [{"type": "snapshot", "seq": 4, "elements": [], "more": False}]
    # The admin's clear is in nobody's history.
    undo = {"type": "undo", "cid": "cid-undo-after-clear"}
    await a.send(undo)
    assert (await a.recv_type("error"))["code"] == "nothing_to_undo"


async def test_admin_clear_works_on_a_locked_board_and_only_on_chosen_ones(
    boards, admin_http, connect
):
    await database_sync_to_async(Board.objects.filter(slug="team").update)(locked=True)
    other = await database_sync_to_async(services.board_create)(
        slug="other", title="Other"
    )
    await database_sync_to_async(seed)(other, "o1")
    a = await connect()
    watcher = await connect("/ws/boards/other/")
    await database_sync_to_async(run_action)(admin_http, "clear_boards", "team")
    assert (await a.recv_type("ops"))["ops"][0]["op"] == "clear"
    await watcher.nothing()
    assert (
        await database_sync_to_async(Board.objects.get)(slug="other")
    ).live_elements == 1


async def test_lock_and_unlock_actions_send_a_board_frame_to_each_connection(
    boards, admin_http, olga, connect
):
    owner = await connect(headers=await database_sync_to_async(session_headers)(olga))
    guest = await connect()
    await database_sync_to_async(run_action)(admin_http, "lock_boards", "team")
    info = {"slug": "team", "title": "Team board", "locked": True}
    assert await owner.recv_type("board") == {
        "type": "board",
        "board": info | {"role": "owner"},
    }
    assert await guest.recv_type("board") == {
        "type": "board",
        "board": info | {"role": "editor"},
    }
    add = {"type": "add", "cid": "cid-when-locked", "element": rect("z")}
    add["element"] |= {"color": "#000000", "width": 1}
    for client in (owner, guest):
        await client.send(add)
        assert (await client.recv_type("error"))["code"] == "forbidden"
    await guest.send({"type": "draft", "element": add["element"]})
    assert (await guest.recv_type("error"))["code"] == "forbidden"

    await database_sync_to_async(run_action)(admin_http, "unlock_boards", "team")
    assert (await guest.recv_type("board"))["board"]["locked"] is False
    assert (await owner.recv_type("board"))["board"]["locked"] is False
    await guest.send(add)
    assert (await guest.recv_type("ops"))["ops"][0]["cid"] == "cid-when-locked"


async def test_renaming_a_board_in_the_admin_tells_connected_clients(
    boards, admin_http, olga, connect
):
    a = await connect()
    await save_change_form(admin_http, boards, title="Renamed")
    assert await a.recv_type("board") == {
        "type": "board",
        "board": {
            "slug": "team",
            "title": "Renamed",
            "role": "editor",
            "locked": False,
        },
    }


async def test_making_visitors_viewers_in_the_admin_changes_connected_guests_role(
    boards, admin_http, olga, connect
):
    """ "When ... a connection's role changes, that connection receives `board`";
    from then on its ops are forbidden."""
    owner = await connect(headers=await database_sync_to_async(session_headers)(olga))
    guest = await connect()
    await save_change_form(admin_http, boards, visitor_role="viewer")
    told = not await guest.comm.receive_nothing(timeout=1)
    assert told, "the guest was not told that its role changed"
    assert await guest.recv_type("board") == {
        "type": "board",
        "board": {"slug": "team", "title": "Team board", "role": "viewer"}
        | {"locked": False},
    }
    add = {"type": "add", "cid": "cid-now-viewer", "element": rect("z")}
    add["element"] |= {"color": "#000000", "width": 1}
    await guest.send(add)
    assert (await guest.recv_type("error"))["code"] == "forbidden"
    await owner.send(add)  # the owner's role did not change
    assert (await owner.recv_type("ops"))["ops"][0]["cid"] == "cid-now-viewer"


async def test_staff_who_may_only_view_boards_cannot_clear_or_lock_them(
    boards, django_user_model, connect
):
    viewer = await database_sync_to_async(view_only_staff)(django_user_model)
    http = HttpClient()
    await database_sync_to_async(http.force_login)(viewer)
    page = await database_sync_to_async(http.get)(CHANGELIST)
    assert page.status_code == 200
    a = await connect()
    for action in ("clear_boards", "lock_boards", "disconnect_everyone"):
        await database_sync_to_async(run_action)(http, action, "team")
    await a.quiet()
    team = await database_sync_to_async(Board.objects.get)(slug="team")
    assert (team.seq, team.live_elements, team.locked) == (3, 3, False)


def view_only_staff(user_model):
    user = user_model.objects.create_user("viewer", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_board"))
    return user


# -- the changelist -------------------------------------------------------------------


def changelist_rows(http, query=""):
    response = http.get(CHANGELIST + query)
    assert response.status_code == 200
    cl = response.context["cl"]
    headers = [strip_tags(h["text"]).strip().capitalize() for h in result_headers(cl)]
    rows = [
        [re.sub(r"\s+", " ", strip_tags(cell)).strip() for cell in row]
        for row in results(cl)
    ]
    return headers, [dict(zip(headers, row, strict=False)) for row in rows]


@pytest.mark.usefixtures("boards")
def test_changelist_shows_title_slug_owner_visibility_lock_and_element_count(
    admin_http,
):
    headers, rows = changelist_rows(admin_http)
    assert headers[1:7] == ["Title", "Slug", "Owner", "Public", "Locked", "Elements"]
    by_slug = {row["Slug"]: row for row in rows}
    assert by_slug["team"]["Title"] == "Team board"
    assert by_slug["team"]["Owner"] == "olga"
    assert by_slug["team"]["Elements"] == "3"
    assert by_slug["plans"]["Elements"] == "0"
    response = admin_http.get(CHANGELIST)
    html = response.content.decode()
    assert 'alt="True"' in html and 'alt="False"' in html


@pytest.mark.usefixtures("boards")
@pytest.mark.parametrize(
    ("query", "slugs"),
    [
        ("?q=secret", ["plans"]),
        ("?q=olga", ["team"]),
        ("?q=team", ["team"]),
        ("?is_public__exact=0", ["plans"]),
        ("?is_public__exact=1", ["team"]),
        ("?locked__exact=1", ["plans"]),
        ("?locked__exact=0", ["team"]),
        ("?visitor_role__exact=editor", ["plans", "team"]),
        ("?q=nothing-like-this", []),
    ],
)
def test_changelist_search_and_filters(admin_http, query, slugs):
    _, rows = changelist_rows(admin_http, query)
    assert sorted(row["Slug"] for row in rows) == slugs


@pytest.mark.usefixtures("boards")
def test_element_count_counts_live_elements_only(admin_http):
    team = Board.objects.get(slug="team")
    limits = current_limits()
    request = OpRequest(
        "cid-delete-a", "delete", SEEDER, p.DeleteOp("cid-delete-a", ("a",))
    )
    services.ops_commit(board_id=team.pk, requests=[request], limits=limits)
    _, rows = changelist_rows(admin_http, "?o=6")  # ordered by element count
    assert [(row["Slug"], row["Elements"]) for row in rows] == [
        ("plans", "0"),
        ("team", "2"),
    ]


def test_admin_action_messages_say_how_many_boards(boards, admin_http):
    response = run_action(admin_http, "lock_boards", "team", "plans")
    page = admin_http.get(response.url)
    assert "2 board(s) locked." in follow_messages(page)
    response = run_action(admin_http, "clear_boards", "team")
    page = admin_http.get(response.url)
    assert "1 board(s) cleared." in follow_messages(page)
    assert Board.objects.get(slug="team").live_elements == 0


def test_saving_settings_from_a_stale_board_does_not_rewind_its_seq(boards):
    """The admin writes only the settings it edits: an op committed after the
    form's board was read keeps its seq, and the next op follows it."""
    stale = Board.objects.get(pk=boards.pk)
    seed(boards, "d")
    stale.title = "Renamed"
    services.board_update_settings(board=stale, fields=["title"])
    board = Board.objects.get(pk=boards.pk)
    assert (board.title, board.seq, board.live_elements) == ("Renamed", 4, 4)
    seed(boards, "e")
    assert Board.objects.get(pk=boards.pk).seq == 5


async def test_making_a_board_private_cuts_off_connected_guests_with_4403(
    boards, admin_http, olga, connect
):
    owner = await connect(headers=await database_sync_to_async(session_headers)(olga))
    guest = await connect()
    await save_change_form(admin_http, boards, is_public=None)
    error = await guest.recv_type("error")
    assert error["code"] == "forbidden"
    assert (await guest.comm.receive_output(timeout=2))["code"] == 4403
    element = rect("o") | {"color": "#000000", "width": 1}
    await owner.send({"type": "add", "cid": "cid-owner-stays", "element": element})
    assert (await owner.recv_type("ops"))["ops"][0]["cid"] == "cid-owner-stays"


# -- members, share links, who is on, moderation -------------------------------------


async def closes_with(client, code, words):
    closed, before = await client.closed()
    assert closed == code
    assert words in before[-1]["text"]


async def test_disconnect_everyone_closes_each_socket_with_4403(
    boards, admin_http, connect
):
    a, b = await connect(), await connect()
    await database_sync_to_async(run_action)(admin_http, "disconnect_everyone", "team")
    for client in (a, b):
        await closes_with(client, 4403, "moderator")


async def test_deleting_boards_after_confirming_closes_their_sockets_with_4404(
    boards, admin_http, connect
):
    a = await connect()
    pk = boards.pk
    confirm = {"action": "delete_selected", "_selected_action": [pk], "post": "yes"}
    response = await database_sync_to_async(admin_http.post)(CHANGELIST, confirm)
    assert response.status_code == 302
    await closes_with(a, 4404, "deleted")
    assert not await database_sync_to_async(Board.objects.filter(pk=pk).exists)()


async def test_removing_a_member_in_the_inline_cuts_them_off(
    boards, admin_http, make_user, connect
):
    mia = await database_sync_to_async(make_user)("mia")
    membership = await database_sync_to_async(Membership.objects.create)(
        board=boards, user=mia, role=Role.EDITOR
    )
    boards.is_public = False
    await database_sync_to_async(boards.save)()
    client = await connect(headers=await database_sync_to_async(session_headers)(mia))
    rows = {
        "members-TOTAL_FORMS": 1,
        "members-INITIAL_FORMS": 1,
        "members-0-id": membership.pk,
        "members-0-board": boards.pk,
        "members-0-user": mia.pk,
        "members-0-role": "editor",
        "members-0-DELETE": "on",
    }
    await save_change_form(admin_http, boards, is_public=None, **rows)
    await closes_with(client, 4403, "no longer have access")


async def test_revoking_a_link_in_the_inline_keeps_it_revoked_and_cuts_off_holders(
    boards, admin_http, connect
):
    boards.is_public = False
    await database_sync_to_async(boards.save)()
    headers = await database_sync_to_async(link_session)(boards, Role.EDITOR)
    guest = await connect(headers=headers)
    link = await database_sync_to_async(boards.share_links.get)()
    rows = {
        "share_links-TOTAL_FORMS": 1,
        "share_links-INITIAL_FORMS": 1,
        "share_links-0-id": link.pk,
        "share_links-0-board": boards.pk,
        "share_links-0-DELETE": "on",
    }
    await save_change_form(admin_http, boards, is_public=None, **rows)
    await closes_with(guest, 4403, "no longer have access")
    await database_sync_to_async(link.refresh_from_db)()
    assert link.revoked_at is not None, "revoked, not deleted"


async def test_change_form_shows_who_is_on_the_board_now_with_their_role(
    boards, admin_http, olga, connect
):
    await connect(headers=await database_sync_to_async(session_headers)(olga))
    guest = await connect()
    url = f"{CHANGELIST}{boards.pk}/change/"
    page = await database_sync_to_async(admin_http.get)(url)
    text = strip_tags(page.content.decode())
    section = text[text.index("On the board now") :]
    assert "olga" in section and "Owner" in section
    assert guest.name in section and "Editor" in section


def test_change_form_shows_each_accounts_effective_role(boards, admin_http, make_user):
    mia = make_user("mia")
    services.member_set(board=boards, user=mia, role=Role.VIEWER)
    boards.visitor_role = Role.EDITOR
    boards.save()
    page = admin_http.get(f"{CHANGELIST}{boards.pk}/change/")
    text = strip_tags(page.content.decode())
    # mia is a viewer member of a public board whose visitors edit: the best
    # grant applies, as on the board itself.
    assert "olga: owner" in text
    assert "mia: editor" in text
    assert "anyone else with the link: editor" in text
