"""A viewer, or anyone on a locked board, sees the board live but cannot draw."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

MAGENTA = "#ff00ff"
DARK = "#1f2328"  # the pen's colour until a user picks another
CHANGES = {"add", "update", "delete", "clear", "undo", "redo", "draft"}
VIEWER = "You can view this board but not draw on it."
LOCKED = "This board is locked."


@pytest.mark.parametrize(
    ("setting", "reason"),
    [({"visitor_role": "viewer"}, VIEWER), ({"locked": True}, LOCKED)],
    ids=["viewer", "locked"],
)
def test_a_read_only_page_shows_the_board_says_why_and_draws_nothing(
    open_board, live_data, setting, reason
):
    board = live_data.create_board()
    alice = open_board(board)
    alice.color(MAGENTA)
    alice.drag([(150, 150), (350, 200)])
    alice.wait_confirmed()
    live_data.update_board(board, **setting)
    alice.page.close()  # only the board's content remains on Bob's screen

    bob = open_board(board)
    expect(bob.board).to_have_attribute("data-readonly", "true")
    expect(bob.page.locator("#readonly-reason")).to_be_visible()
    expect(bob.page.locator("#readonly-reason")).to_have_text(reason)
    for button in bob.page.locator("button[data-tool]").all():
        expect(button).to_be_disabled()
    bob.wait_pixels(lambda s: s.count(MAGENTA) > 100, "Alice's stroke")

    # Bob tries anyway: the pen with the mouse, then R and a rectangle, T and text.
    bob.drag([(150, 300), (400, 380)])
    bob.board.focus()
    bob.page.keyboard.press("r")
    bob.drag([(450, 100), (600, 200)])
    bob.page.keyboard.press("t")
    bob.click_at(500, 400)
    bob.page.keyboard.type("no")
    bob.page.keyboard.press("Enter")
    # A cursor frame sent after all that proves every earlier frame was seen.
    bob.expect_sent("cursor", lambda: bob.page.mouse.move(*bob.at(20, 20), steps=10))

    assert not CHANGES & set(bob.sent_types()), bob.sent_types()
    assert len(bob.elements()) == 1
    assert live_data.element_rows(board) == 1
    # A viewer may pan and zoom, so the stroke may have moved; but nothing in
    # Bob's (default, dark) colour was drawn, not even a local preview.
    shot = bob.shot()
    assert shot.count(MAGENTA) > 100
    assert shot.count(DARK, tolerance=60) == 0, "something was drawn on the board"


def test_a_change_the_server_refuses_is_rolled_back_with_a_message(
    open_board, live_data
):
    """The board is locked behind the page's back: its next stroke is refused."""
    board = live_data.create_board()
    alice, bob = open_board(board), open_board(board)
    live_data.update_board(board, locked=True)  # no `board` frame reaches the pages

    alice.color(MAGENTA)
    alice.expect_received(
        lambda frame: frame.get("code") == "forbidden",
        lambda: alice.drag([(150, 150), (350, 200)]),
    )
    notice = alice.page.locator("#notices .notice").filter(has_text="refused")
    expect(notice).not_to_have_count(0)
    alice.wait_count(0)
    alice.wait_confirmed()
    alice.wait_pixels(lambda s: s.count(MAGENTA) == 0, "the refused stroke gone")
    assert bob.shot().count(MAGENTA) == 0
    assert live_data.element_rows(board) == 0


def test_the_owner_draws_and_a_visitor_who_may_only_view_watches_live(
    open_board, live_data
):
    owner = live_data.create_user("owner-pw-9f3k2")
    board = live_data.create_board(owner=owner, visitor_role="viewer")
    alice = open_board(board, login=(owner, "owner-pw-9f3k2"))
    bob = open_board(board)
    expect(alice.board).to_have_attribute("data-readonly", "false")
    expect(bob.board).to_have_attribute("data-readonly", "true")
    expect(bob.page.locator("#readonly-reason")).to_have_text(VIEWER)

    alice.color(MAGENTA)
    alice.drag([(150, 150), (350, 200)])
    bob.wait_pixels(lambda s: s.count(MAGENTA) > 100, "the owner's stroke, live")
    bob.drag([(150, 300), (400, 380)])
    bob.expect_sent("cursor", lambda: bob.page.mouse.move(*bob.at(20, 20), steps=10))
    assert not CHANGES & set(bob.sent_types()), bob.sent_types()
    alice.wait_confirmed()
    assert [e["kind"] for e in live_data.elements(board)] == ["stroke"]
