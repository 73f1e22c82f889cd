"""A login that ends ends its open sockets, on a live daphne (issue 10, point 1).

Logout and a password change go through the site's own forms (real CSRF); a
deactivation and a deletion are made from another process, as `manage.py` or
a second server would: with Redis the per-user event reaches the daphne, and
without it the heartbeat's session check does, within one heartbeat.
"""

import asyncio
import contextlib
import uuid

import pytest

from tests.live import base_env, closed_with, manage, read_state
from tests.livehttp import Browser

pytestmark = pytest.mark.live

PASSWORD = "live-horse-battery-42"


async def logged_in_socket(server, live_db, stack):
    username = await asyncio.to_thread(
        live_db.create_user, f"u{uuid.uuid4().hex[:10]}", PASSWORD
    )
    slug = await asyncio.to_thread(live_db.create_board)
    browser = await asyncio.to_thread(Browser.logged_in, server, username, PASSWORD)
    ws = await stack.enter_async_context(
        server.open(slug, additional_headers=browser.ws_headers())
    )
    welcome, _ = await read_state(ws)
    assert welcome["you"]["name"] == username
    return username, browser, ws


def in_other_process(live_db, code, username):
    manage(
        base_env(live_db.url, LIVE_USERNAME=username),
        "shell",
        "-c",
        "import os; from django.contrib.auth import get_user_model; "
        "user = get_user_model().objects.get(username=os.environ['LIVE_USERNAME']); "
        + code,
    )


@pytest.fixture
def server(start_server):
    # A heartbeat every 2 s: the session check runs that often.
    return start_server(WHITEBOARD_HEARTBEAT_SECONDS=2)


@pytest.mark.parametrize("how", ["logout", "password change"])
async def test_the_browsers_own_forms_close_its_sockets(server, live_db, how):
    async with contextlib.AsyncExitStack() as stack:
        _, browser, ws = await logged_in_socket(server, live_db, stack)
        if how == "logout":
            logout = "/accounts/logout/"
            status, _, _ = await asyncio.to_thread(browser.post, logout, {})
        else:
            new = "another-horse-battery-77"
            fields = {
                "old_password": PASSWORD,
                "new_password1": new,
                "new_password2": new,
            }
            status, _, _ = await asyncio.to_thread(
                browser.post, "/accounts/password_change/", fields
            )
        assert status == 302
        code, last = await closed_with(ws, timeout=2)
    assert code == 4401
    assert last["type"] == "error" and last["code"] == "login_required"
    assert last["message"]


@pytest.mark.parametrize(
    "code", ["user.is_active = False; user.save()", "user.delete()"]
)
async def test_an_account_changed_elsewhere_loses_its_sockets(server, live_db, code):
    async with contextlib.AsyncExitStack() as stack:
        username, _, ws = await logged_in_socket(server, live_db, stack)
        await asyncio.to_thread(in_other_process, live_db, code, username)
        closed, last = await closed_with(ws, timeout=4)
    assert closed == 4401
    assert last["code"] == "login_required"
