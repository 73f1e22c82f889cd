"""Logging out clears what the browser kept: unsent changes and recent boards."""

from playwright.sync_api import expect

from tests.live import VIEWPORT

PASSWORD = "browser-horse-battery-5"
UNSENT = [
    {"cid": f"cid-unsent-{n}", "msg": {"type": "clear", "cid": f"cid-unsent-{n}"}}
    for n in range(3)
]


def kept(page):
    """The whiteboard's localStorage entries, by key."""
    return page.page.evaluate(
        """() => Object.fromEntries(Object.keys(localStorage)
            .filter((k) => k.startsWith("whiteboard."))
            .map((k) => [k, localStorage.getItem(k)]))"""
    )


def leave_unsent_changes(page):
    page.page.evaluate(
        "(items) => localStorage.setItem('whiteboard.pending.elsewhere', "
        "JSON.stringify(items))",
        UNSENT,
    )


def test_logging_out_says_how_many_changes_were_unsent_then_clears_them(
    open_board, board, live_data
):
    username = live_data.create_user(PASSWORD)
    page = open_board(board, login=(username, PASSWORD))
    assert "whiteboard.recent" in kept(page), "the board page remembered the visit"
    leave_unsent_changes(page)
    asked = []
    page.page.once(
        "dialog", lambda dialog: (asked.append(dialog.message), dialog.accept())
    )
    page.page.locator("#logout-form button").click()
    page.page.wait_for_url(f"{page.origin}/")
    expect(page.page.locator("a", has_text="Log in")).to_be_visible()
    assert asked and asked[0].startswith("3 changes on this computer have not reached")
    assert kept(page) == {}


def test_staying_logged_in_keeps_the_unsent_changes(open_board, board, live_data):
    username = live_data.create_user(PASSWORD)
    page = open_board(board, login=(username, PASSWORD))
    leave_unsent_changes(page)
    page.page.once("dialog", lambda dialog: dialog.dismiss())
    page.page.locator("#logout-form button").click()
    page.page.reload()  # the server still has the session: nothing was posted
    expect(page.page.locator(".nav-user")).to_have_text(username)
    assert "whiteboard.pending.elsewhere" in kept(page)


def test_logging_out_with_nothing_unsent_asks_nothing(open_board, board, live_data):
    username = live_data.create_user(PASSWORD)
    page = open_board(board, login=(username, PASSWORD))
    asked = []
    page.page.on("dialog", lambda dialog: (asked.append(dialog), dialog.dismiss()))
    page.page.locator("#logout-form button").click()
    page.page.wait_for_url(f"{page.origin}/")
    assert asked == []
    assert kept(page) == {}


def test_the_board_pages_own_unsent_change_is_counted_and_cleared(
    open_board, browser, board, live_data
):
    # The server never gets the page's `add`, so it stays unsent in the queue.
    context = browser.new_context(viewport=VIEWPORT)

    def hold_adds(ws):
        server = ws.connect_to_server()
        ws.on_message(
            lambda text: None if '"type":"add"' in text else server.send(text)
        )

    context.route_web_socket("**/ws/boards/**", hold_adds)
    username = live_data.create_user(PASSWORD)
    page = open_board(board, context=context, login=(username, PASSWORD))
    page.drag([(150, 150), (350, 200)])
    page.page.wait_for_function(
        "key => (JSON.parse(localStorage.getItem(key) || '[]')).length === 1",
        arg=f"whiteboard.pending.{board}",
    )
    asked = []
    page.page.once(
        "dialog", lambda dialog: (asked.append(dialog.message), dialog.accept())
    )
    page.page.locator("#logout-form button").click()
    page.page.wait_for_url(f"{page.origin}/")
    assert asked and asked[0].startswith("1 change on this computer has not reached")
    assert kept(page) == {}
