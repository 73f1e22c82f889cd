"""Follow mode (PROTOCOL.md 1.1 "Viewports"): clicking a person in the people list
shows what they show, moving yourself stops it, and the followed person sees it."""

import pytest
from playwright.sync_api import expect

from .boardpage import BoardPage

pytestmark = [pytest.mark.browser, pytest.mark.clean_console]

MAGENTA = "#ff00ff"  # in no guest colour and nowhere in the page's chrome

# How close the follower's view must come to the leader's: the rectangle goes over
# the wire rounded to hundredths of a board unit.
SCALE_TOLERANCE = 1e-3
BOARD_TOLERANCE = 0.5


def sid(page: BoardPage) -> str:
    return page.page.locator("#people li.me").get_attribute("data-user") or ""


def name(page: BoardPage) -> str:
    return page.page.locator("#people li.me .name").inner_text().removesuffix(" (you)")


def view(page: BoardPage) -> dict:
    return page.page.evaluate("() => window.whiteboard.viewport")


def person(page: BoardPage, of: BoardPage):
    """The button of `of` in the people list of `page`."""
    return page.page.locator(f'#people li[data-user="{sid(of)}"] button')


def pan(page: BoardPage, dx: int, dy: int) -> None:
    """Drag the view with the middle button by (dx, dy) screen pixels."""
    mouse = page.page.mouse
    mouse.move(*page.at(600, 400))
    mouse.down(button="middle")
    mouse.move(*page.at(600 + dx, 400 + dy), steps=4)
    mouse.up(button="middle")


def wait_same_view(follower: BoardPage, leader: BoardPage) -> None:
    """Wait until the follower shows what the leader shows (pages of one size)."""
    want = view(leader)
    follower.page.wait_for_function(
        """([want, scaleTol, tol]) => {
          const v = window.whiteboard.viewport;
          return Math.abs(v.scale / want.scale - 1) < scaleTol
            && Math.abs(v.x - want.x) < tol && Math.abs(v.y - want.y) < tol;
        }""",
        arg=[want, SCALE_TOLERANCE, BOARD_TOLERANCE],
    )


def wait_knows_view(follower: BoardPage, leader: BoardPage) -> None:
    """Wait until the follower's page has received the leader's current rectangle."""
    want = view(leader)
    follower.page.wait_for_function(
        """([sid, want, tol]) => {
          const rect = window.whiteboard.follow.viewports[sid];
          return rect !== undefined
            && Math.abs(rect.x - want.x) < tol && Math.abs(rect.y - want.y) < tol
            && Math.abs(rect.w - want.width / want.scale) < tol
            && Math.abs(rect.h - want.height / want.scale) < tol;
        }""",
        arg=[sid(leader), want, BOARD_TOLERANCE],
    )


def wait_shows_whole(follower: BoardPage, leader: BoardPage) -> None:
    """Wait until the follower's view holds all of the leader's, centred, as large
    as it fits (the follower's screen has another shape)."""
    want = view(leader)
    follower.page.wait_for_function(
        """([want, tol]) => {
          const v = window.whiteboard.viewport;
          const w = v.width / v.scale, h = v.height / v.scale;
          const ww = want.width / want.scale, wh = want.height / want.scale;
          const centred = Math.abs(v.x + w / 2 - (want.x + ww / 2)) < tol
            && Math.abs(v.y + h / 2 - (want.y + wh / 2)) < tol;
          const whole = w >= ww - tol && h >= wh - tol;
          const fits = Math.abs(w - ww) < tol || Math.abs(h - wh) < tol;
          return v.width !== want.width && centred && whole && fits;
        }""",
        arg=[want, BOARD_TOLERANCE],
    )


def test_following_shows_the_leaders_view_until_the_follower_moves(open_board, board):
    alice, bob = open_board(board), open_board(board)
    expect(bob.page.locator("#people li")).to_have_count(2)

    # Alice goes far from where both started, draws there, and zooms out a step.
    pan(alice, -500, -350)
    pan(alice, -500, -350)
    alice.tool("rect")
    alice.color(MAGENTA)
    alice.width(8)
    alice.drag([(300, 200), (500, 350)])
    alice.wait_confirmed()
    alice.board.press("-")
    alice.wait_pixels(lambda s: s.count(MAGENTA) > 500, "the rectangle on Alice's page")
    bob.wait_count(1)
    assert bob.shot().count(MAGENTA) == 0, "the rectangle is far from Bob's view"

    # Bob follows Alice: his view becomes hers, he sees her rectangle where she does.
    leader = person(bob, alice)
    expect(leader).to_have_attribute("aria-pressed", "false")
    leader.click()
    expect(leader).to_have_attribute("aria-pressed", "true")
    wait_same_view(bob, alice)
    shot = bob.wait_pixels(lambda s: s.count(MAGENTA) > 500, "the rectangle for Bob")
    left, top, right, bottom = shot.box(MAGENTA)
    want = alice.shot().box(MAGENTA)
    assert want is not None
    for got, expected in zip((left, top, right, bottom), want, strict=True):
        assert got == pytest.approx(expected, abs=3), (shot.box(MAGENTA), want)

    # Bob sees whom he follows: a banner and a frame in Alice's colour.
    banner = bob.page.locator("#follow-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(f"Following {name(alice)}")
    expect(bob.board).to_have_class("board following")
    color = alice.page.evaluate(
        "() => getComputedStyle(document.querySelector('#people li.me .swatch'))"
        ".backgroundColor"
    )
    edge = bob.shot().image.getpixel((1, 300))
    assert f"rgb({edge[0]}, {edge[1]}, {edge[2]})" == color, (edge, color)

    # Alice moves on: Bob's view goes with her.
    pan(alice, 200, 120)
    alice.board.press("=")
    wait_same_view(bob, alice)

    # Bob pans himself: following ends, and Alice's next move leaves his view alone.
    pan(bob, 150, 0)
    expect(banner).to_be_hidden()
    expect(leader).to_have_attribute("aria-pressed", "false")
    assert "following" not in (bob.board.get_attribute("class") or "")
    mine = view(bob)
    pan(alice, -300, -200)
    wait_knows_view(bob, alice)
    assert view(bob) == mine


def test_follow_by_keyboard_stop_with_escape_and_when_the_leader_leaves(
    open_board, board
):
    alice, bob = open_board(board), open_board(board)
    pan(alice, -400, -300)
    wait_knows_view(bob, alice)

    # Enter on Alice's entry follows her, Escape stops.
    leader = person(bob, alice)
    leader.focus()
    leader.press("Enter")
    expect(leader).to_have_attribute("aria-pressed", "true")
    wait_same_view(bob, alice)
    expect(bob.page.locator("#follow-banner")).to_be_visible()

    # A narrower window still shows all of Alice's view, centred.
    bob.page.set_viewport_size({"width": 900, "height": 800})
    wait_shows_whole(bob, alice)

    bob.board.press("Escape")
    expect(bob.page.locator("#follow-banner")).to_be_hidden()
    expect(leader).to_have_attribute("aria-pressed", "false")

    # Space follows her again (the list keeps the focus); the stop button stops.
    person(bob, alice).focus()
    person(bob, alice).press("Space")
    expect(person(bob, alice)).to_have_attribute("aria-pressed", "true")
    bob.page.locator("#follow-banner button").click()
    expect(bob.page.locator("#follow-banner")).to_be_hidden()

    # Following again, then Alice leaves: following ends with a notice.
    person(bob, alice).click()
    expect(bob.page.locator("#follow-banner")).to_be_visible()
    alice_name = name(alice)
    alice.page.close()
    expect(bob.page.locator("#follow-banner")).to_be_hidden()
    notice = bob.page.locator("#notices .notice").filter(
        has_text=f"{alice_name} left: you no longer follow them."
    )
    expect(notice).to_have_count(1)
    assert "following" not in (bob.board.get_attribute("class") or "")


def test_the_followed_person_sees_who_follows_them(open_board, board):
    alice, bob, carol = open_board(board), open_board(board), open_board(board)
    expect(alice.page.locator("#people li")).to_have_count(3)
    mine = alice.page.locator("#people li.me .badge")
    bob_badge = alice.page.locator(f'#people li[data-user="{sid(bob)}"] .badge')
    expect(mine).to_have_count(0)

    person(bob, alice).click()
    expect(bob_badge).to_have_text("following you")
    expect(mine).to_have_text("1 following you")
    person(carol, alice).click()
    expect(mine).to_have_text("2 following you")
    # Carol sees nothing of it: Bob follows Alice, not her.
    expect(carol.page.locator("#people .badge")).to_have_count(0)

    # Bob stops by panning, Carol by leaving.
    pan(bob, 100, 50)
    expect(bob_badge).to_have_count(0)
    expect(mine).to_have_text("1 following you")
    carol.page.close()
    expect(mine).to_have_count(0)
