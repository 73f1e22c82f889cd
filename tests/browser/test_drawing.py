"""Two people on one board: what one draws with the mouse, the other sees."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

MAGENTA = "#ff00ff"  # in no guest colour and nowhere in the page's chrome
PATH = [(200, 200), (320, 260), (440, 220), (560, 300)]


def test_a_stroke_drawn_with_the_mouse_shows_on_the_other_canvas_and_is_stored(
    open_board, board, live_data
):
    alice = open_board(board)
    bob = open_board(board)
    assert bob.shot().count(MAGENTA) == 0, "the board starts blank"

    alice.tool("pen")
    alice.color(MAGENTA)
    alice.width(6)
    alice.drag(PATH)

    # Bob's canvas: magenta pixels spanning about the path Alice drew.
    shot = bob.wait_pixels(
        lambda shot: shot.count(MAGENTA) > 300, "Alice's stroke on Bob's page"
    )
    left, top, right, bottom = shot.box(MAGENTA)
    assert right - left == pytest.approx(360, abs=30), shot.box(MAGENTA)
    assert bottom - top == pytest.approx(100, abs=30), shot.box(MAGENTA)
    alice.wait_confirmed()

    # Stored: one stroke, in Alice's colour, that Bob's page holds too.
    [stored] = live_data.elements(board)
    assert stored["kind"] == "stroke"
    assert stored["color"].lower() == MAGENTA
    assert len(stored["points"]) >= 2
    [held] = bob.wait_count(1)
    assert held["id"] == stored["id"]


def test_a_stroke_shows_on_the_other_page_while_it_is_being_drawn(open_board, board):
    alice, bob = open_board(board), open_board(board)
    alice.color(MAGENTA)
    mouse = alice.page.mouse
    mouse.move(*alice.at(*PATH[0]))
    mouse.down()
    for point in PATH[1:]:
        mouse.move(*alice.at(*point), steps=4)
    # The button is still down: nothing is committed, yet Bob sees the stroke.
    bob.wait_pixels(lambda s: s.count(MAGENTA) > 300, "Alice's stroke, in progress")
    assert bob.elements() == []
    mouse.up()
    bob.wait_count(1)


def test_people_on_the_board_and_join_and_leave_notices(open_board, board):
    alice, bob = open_board(board), open_board(board)
    people = alice.page.locator("#people li")
    expect(people).to_have_count(2)
    bob_name = bob.page.locator("#people li.me").inner_text().removesuffix(" (you)")
    expect(people.filter(has_text=bob_name)).to_have_count(1)
    notices = alice.page.locator("#notices .notice")
    expect(notices.filter(has_text=bob_name)).not_to_have_count(0)

    bob.page.close()
    expect(people).to_have_count(1)
    expect(notices.filter(has_text="left")).not_to_have_count(0)


def test_a_finger_draws_and_two_fingers_pan(open_board, board, live_data):
    alice, bob = open_board(board, touch=True), open_board(board)
    alice.color(MAGENTA)
    alice.touch_drag([[(200 + 20 * i, 200 + 5 * i) for i in range(11)]])
    bob.wait_pixels(lambda s: s.count(MAGENTA) > 100, "the stroke drawn by finger")
    alice.wait_confirmed()
    assert [e["kind"] for e in live_data.elements(board)] == ["stroke"]

    # Two fingers moving together pan Alice's view; nothing new is drawn.
    before = alice.shot().box(MAGENTA)
    fingers = [
        [(500 + 10 * i, 300) for i in range(11)],
        [(600 + 10 * i, 400) for i in range(11)],
    ]
    alice.touch_drag(fingers)
    alice.wait_pixels(
        lambda s: (s.box(MAGENTA) or before)[0] >= before[0] + 90, "the view panned"
    )
    assert len(alice.elements()) == 1
    assert len(live_data.elements(board)) == 1
