"""Two people on one board: what one draws with the mouse, the other sees."""

import pytest

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
