"""Guests on a live daphne: marked as guests on the socket, kept off registered
names, and given no session by merely viewing pages."""

import asyncio
import json
import uuid
from urllib.parse import urlencode

import pytest

from tests.live import add_frame, next_of, read_state
from tests.livehttp import Browser

pytestmark = pytest.mark.live

PASSWORD = "live-horse-battery-42"


def rename(browser, name):
    """The board page's rename fetch: a CSRF-protected POST asking for JSON."""
    browser.get("/")  # the csrftoken cookie
    fields = {"name": name, "csrfmiddlewaretoken": browser.cookies["csrftoken"]}
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
        "Origin": browser.server.origin,
    }
    status, _, body = browser.request("POST", "/me/name", urlencode(fields), headers)
    return status, json.loads(body)


async def test_a_guests_name_is_marked_on_the_socket_and_in_by(start_server, live_db):
    server = start_server()
    slug = await asyncio.to_thread(live_db.create_board)
    guest = Browser(server)
    status, answer = await asyncio.to_thread(rename, guest, "Ada")
    assert (status, answer) == (200, {"name": "Ada"})
    async with server.open(slug, additional_headers=guest.ws_headers()) as ws:
        welcome, _ = await read_state(ws)
        assert welcome["you"]["name"] == "Ada (guest)"
        await ws.send(add_frame("e1"))
        ops = await next_of(ws, "ops")
        assert ops["ops"][0]["by"] == "Ada (guest)"
    async with server.open(slug) as anonymous:
        welcome, _ = await read_state(anonymous)
        assert welcome["you"]["name"].endswith(" (guest)")


async def test_a_guest_cannot_take_a_registered_users_name(start_server, live_db):
    server = start_server()
    username = f"Reg{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(live_db.create_user, username, PASSWORD)
    status, answer = await asyncio.to_thread(rename, Browser(server), username.lower())
    assert status == 400
    assert "is the name of a registered user" in answer["error"]


def test_cookie_less_page_views_get_no_session_cookie(start_server, live_db):
    server = start_server()
    slug = live_db.create_board()
    for _ in range(100):
        for path in ("/", f"/b/{slug}/"):
            browser = Browser(server)
            status, _, _ = browser.get(path)
            assert status == 200
            assert "sessionid" not in browser.cookies, path
