"""A real login against a live daphne, and the board socket that follows it."""

import asyncio
import re
import uuid
from urllib.parse import urlencode

import pytest

from tests.live import LoginFailed, live_login, post_login, read_state
from tests.livehttp import Browser

pytestmark = pytest.mark.live

PASSWORD = "live-horse-battery-42"


def new_user(live_db):
    return live_db.create_user(f"u{uuid.uuid4().hex[:10]}", PASSWORD)


async def test_a_logged_in_browser_is_named_in_the_board_welcome(start_server, live_db):
    server = start_server()
    username = await asyncio.to_thread(new_user, live_db)
    slug = await asyncio.to_thread(live_db.create_board)
    cookie = await asyncio.to_thread(live_login, server, username, PASSWORD)
    async with server.open(slug, additional_headers={"Cookie": cookie}) as ws:
        welcome, _ = await read_state(ws)
    assert welcome["you"]["name"] == username
    assert welcome["board"]["role"] == "editor"
    async with server.open(slug) as guest:
        anonymous, _ = await read_state(guest)
    assert anonymous["you"]["name"] != username


async def test_a_wrong_password_sets_no_session(start_server, live_db):
    server = start_server()
    username = await asyncio.to_thread(new_user, live_db)
    with pytest.raises(LoginFailed, match="answered 200"):
        await asyncio.to_thread(live_login, server, username, "not-the-password")


def test_login_attempts_are_counted_across_processes_behind_redis(
    start_server, live_db, redis_url
):
    # Both servers share one Redis (and a prefix of their own): four attempts
    # split between them make four on one counter, the fourth over "3/d".
    shared = {"redis_url": redis_url, "REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}"}
    first = start_server(WHITEBOARD_LOGIN_RATE="3/d", **shared)
    second = start_server(WHITEBOARD_LOGIN_RATE="3/d", **shared)
    username = new_user(live_db)
    statuses = [
        post_login(server, username, "guess")[0] for server in (first, second, first)
    ]
    assert statuses == [200, 200, 200]
    status, _, page = post_login(second, username, PASSWORD)
    assert status == 429
    assert "Too many login attempts; try again in" in page


def admin_login(server, username, password):
    """Submit /admin/login/ as a browser does (CSRF cookie, token, Origin)."""
    browser = Browser(server)
    _, _, page = browser.get("/admin/login/?next=/admin/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    fields = {"username": username, "password": password, "next": "/admin/"}
    return browser.request(
        "POST",
        "/admin/login/?next=/admin/",
        urlencode({**fields, "csrfmiddlewaretoken": token}),
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": server.origin,
        },
    )


def test_the_admin_login_is_limited_like_the_site_login(start_server, live_db):
    server = start_server(WHITEBOARD_LOGIN_RATE="10/d")
    username = live_db.create_user(f"a{uuid.uuid4().hex[:10]}", PASSWORD, True)
    statuses = [admin_login(server, username, "guess")[0] for _ in range(15)]
    assert statuses == [200] * 10 + [429] * 5
    status, headers, page = admin_login(server, username, PASSWORD)
    assert status == 429, "the right password is refused while limited"
    assert 1 <= int(headers["Retry-After"]) <= 86400
    assert "Too many login attempts; try again in" in page
