"""Private boards, members and share links against live daphne processes.

Every grant is made the way an owner makes it, through the settings page over
HTTP with a real login and CSRF token; every check is made with a real
WebSocket client carrying the browser's session cookie.
"""

import asyncio
import contextlib
import json
import re
import uuid

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.live import add_frame, next_of, read_state
from tests.livehttp import Browser, new_share_link, settings_rows

pytestmark = pytest.mark.live

PASSWORD = "live-sharing-pw-4711"


def account(live_db, superuser=False):
    name = f"u{uuid.uuid4().hex[:10]}"
    live_db.create_user(name, PASSWORD, superuser=superuser)
    return name


def private_board(live_db, owner):
    return live_db.create_board(None, "--private", "--owner", owner)


async def refused(server, slug, **options):
    """Open a socket that the server refuses: (error frame, close code)."""
    async with server.open(slug, **options) as ws:
        frame = json.loads(await ws.recv())
        await ws.wait_closed()
    return frame, ws.close_code


async def cut_off(ws, timeout=10):
    """Read up to the close of a socket that loses access: (error, close code)."""
    frames = []
    async with asyncio.timeout(timeout):
        with contextlib.suppress(ConnectionClosed):
            while True:
                frames.append(json.loads(await ws.recv()))
    return frames[-1], ws.close_code


async def cids_until(ws, cid):
    """The cids of the ops a client receives, up to and including `cid`."""
    seen = []
    while cid not in seen:
        seen += [op["cid"] for op in (await next_of(ws, "ops"))["ops"]]
    return seen


def to_thread(function, *args, **kwargs):
    return asyncio.to_thread(function, *args, **kwargs)


async def test_who_gets_in_and_with_which_role(start_server, live_db):
    server = start_server()
    owner_name, stranger_name, mia_name = [
        await to_thread(account, live_db) for _ in range(3)
    ]
    slug = await to_thread(private_board, live_db, owner_name)
    owner = await to_thread(Browser.logged_in, server, owner_name, PASSWORD)
    stranger = await to_thread(Browser.logged_in, server, stranger_name, PASSWORD)

    # A foreign Origin is refused at the handshake, cookie or not.
    with pytest.raises(InvalidStatus) as handshake:
        async with server.open(
            slug, origin="http://evil.example", additional_headers=owner.ws_headers()
        ):
            pass
    assert handshake.value.response.status_code == 403

    frame, code = await refused(server, slug)
    assert (frame["code"], code) == ("login_required", 4401)
    frame, code = await refused(server, slug, additional_headers=stranger.ws_headers())
    assert (frame["code"], code) == ("forbidden", 4403)

    # The owner makes mia a viewer on the settings page; her ops are forbidden.
    status, _, _ = await to_thread(
        owner.post, f"/b/{slug}/members/", {"username": mia_name, "role": "viewer"}
    )
    assert status == 302
    mia = await to_thread(Browser.logged_in, server, mia_name, PASSWORD)
    async with server.open(slug, additional_headers=mia.ws_headers()) as ws:
        welcome, _ = await read_state(ws)
        assert welcome["board"]["role"] == "viewer"
        await ws.send(add_frame("by-viewer"))
        error = await next_of(ws, "error")
        assert error["code"] == "forbidden" and error["cid"] == "cid0000-by-viewer"

    # A guest (no account) opens an editor link and draws.
    guest = Browser(server)
    link = await to_thread(new_share_link, owner, slug, "editor")
    status, headers, _ = await to_thread(guest.get, link)
    assert (status, headers["Location"]) == (302, f"/b/{slug}/")
    async with server.open(slug, additional_headers=guest.ws_headers()) as ws:
        welcome, _ = await read_state(ws)
        assert welcome["board"]["role"] == "editor"
        await ws.send(add_frame("by-link"))
        ops = await next_of(ws, "ops")
        assert ops["ops"][0]["cid"] == "cid0000-by-link"
    key = link.split("key=")[1]
    await to_thread(server.stop)
    assert key not in server.logs(), "share keys never reach the logs"
    assert f"/b/{slug}/?key=[redacted]" in server.logs()


async def test_settings_forms_enforce_csrf_and_keep_guests_out(start_server, live_db):
    server = start_server()
    owner_name = await to_thread(account, live_db)
    slug = await to_thread(private_board, live_db, owner_name)
    owner = await to_thread(Browser.logged_in, server, owner_name, PASSWORD)
    forms = [
        (f"/b/{slug}/settings/", {"title": "Hijacked", "visitor_role": "editor"}),
        (f"/b/{slug}/members/", {"username": owner_name, "role": "viewer"}),
        (f"/b/{slug}/links/", {"role": "editor"}),
        (f"/b/{slug}/delete/", {"confirm": slug}),
    ]
    for path, fields in forms:
        status, _, _ = await to_thread(owner.post, path, fields, csrf=False)
        assert status == 403, path
    status, _, page = await to_thread(owner.get, f"/b/{slug}/settings/")
    assert status == 200 and "Hijacked" not in page and "No share links" in page

    guest = Browser(server)
    link = await to_thread(new_share_link, owner, slug, "editor")
    await to_thread(guest.get, link)
    status, headers, _ = await to_thread(guest.get, f"/b/{slug}/settings/")
    assert status == 302 and headers["Location"].startswith("/accounts/login/")


async def test_revoked_links_and_removed_members_are_cut_off_on_both_processes(
    start_server, live_db, redis_url
):
    first = start_server(redis_url=redis_url)
    second = start_server(redis_url=redis_url)
    owner_name, mia_name = [await to_thread(account, live_db) for _ in range(2)]
    slug = await to_thread(private_board, live_db, owner_name)
    owner = await to_thread(Browser.logged_in, first, owner_name, PASSWORD)
    await to_thread(
        owner.post, f"/b/{slug}/members/", {"username": mia_name, "role": "editor"}
    )
    [member_id] = await to_thread(settings_rows, owner, slug, "member")
    mia = await to_thread(Browser.logged_in, second, mia_name, PASSWORD)
    guest = Browser(second)
    link = await to_thread(new_share_link, owner, slug, "editor")
    await to_thread(guest.get, link)

    owner_ws = await first.open(slug, additional_headers=owner.ws_headers())
    mia_ws = await second.open(slug, additional_headers=mia.ws_headers())
    guest_ws = await second.open(slug, additional_headers=guest.ws_headers())
    try:
        for ws in (owner_ws, mia_ws, guest_ws):
            await read_state(ws)
        # Revoking on the first process cuts off the link's holder on the second.
        [link_id] = await to_thread(settings_rows, owner, slug, "link")
        await to_thread(owner.post, f"/b/{slug}/links/{link_id}/revoke/", {})
        frame, code = await cut_off(guest_ws)
        assert (frame["code"], code) == ("forbidden", 4403)
        # Mia is still on, until the owner removes her.
        await mia_ws.send(add_frame("mia-1"))
        assert (await next_of(mia_ws, "ops"))["ops"][0]["cid"] == "cid0000-mia-1"
        path = f"/b/{slug}/members/{member_id}/"
        await to_thread(owner.post, path, {"role": "remove"})
        frame, code = await cut_off(mia_ws)
        assert (frame["code"], code) == ("forbidden", 4403)
        # The owner stays, and still draws.
        await owner_ws.send(add_frame("owner-1"))
        await cids_until(owner_ws, "cid0000-owner-1")  # times out if it never comes
    finally:
        for ws in (owner_ws, mia_ws, guest_ws):
            await ws.close()


async def test_admin_moderation_reaches_clients_on_both_processes(
    start_server, live_db, redis_url
):
    first = start_server(redis_url=redis_url)
    second = start_server(redis_url=redis_url)
    staff_name = await to_thread(account, live_db, True)
    slug = await to_thread(live_db.create_board)
    staff = await to_thread(Browser.logged_in, first, staff_name, PASSWORD)
    board_id = await to_thread(admin_board_id, staff, slug)
    near = await first.open(slug)
    far = await second.open(slug)
    try:
        for ws in (near, far):
            await read_state(ws)
        action = {"action": "lock_boards", "_selected_action": board_id}
        status, _, _ = await to_thread(staff.post, "/admin/whiteboard/board/", action)
        assert status == 302
        for ws in (near, far):
            assert (await next_of(ws, "board"))["board"]["locked"] is True
        action["action"] = "disconnect_everyone"
        await to_thread(staff.post, "/admin/whiteboard/board/", action)
        for ws in (near, far):
            frame, code = await cut_off(ws)
            assert code == 4403 and "moderator" in frame["message"]
    finally:
        for ws in (near, far):
            await ws.close()


def admin_board_id(staff, slug):
    _, _, page = staff.get(f"/admin/whiteboard/board/?q={slug}")
    return re.search(r'name="_selected_action" value="(\d+)"', page)[1]
