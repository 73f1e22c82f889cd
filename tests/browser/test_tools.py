"""Text, shapes, the eraser and undo/redo end as a user expects, on both pages."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

MAGENTA, CYAN, ORANGE, GREEN = "#ff00ff", "#00ffff", "#ffa500", "#00ff00"


def kinds(elements):
    return [element["kind"] for element in elements]


def size(box):
    left, top, right, bottom = box
    return right - left, bottom - top


def test_text_typed_on_one_page_is_written_on_both(open_board, board, live_data):
    alice, bob = open_board(board), open_board(board)
    alice.color(MAGENTA)
    alice.type_text(200, 200, "Hello board")

    for page in (alice, bob):
        [element] = page.wait_count(1)
        assert (element["kind"], element["text"]) == ("text", "Hello board")
        # Glyphs are drawn: magenta pixels in a line of text, right of the click.
        shot = page.wait_pixels(lambda s: s.count(MAGENTA) > 40, "the text's glyphs")
        left, top, right, _ = shot.box(MAGENTA)
        assert left >= 195 and top >= 190 and right - left > 50, shot.box(MAGENTA)
    alice.wait_confirmed()
    [stored] = live_data.elements(board)
    assert (stored["kind"], stored["text"]) == ("text", "Hello board")


def test_line_arrow_rectangle_and_ellipse_have_their_size_on_both_pages(
    open_board, board, live_data
):
    alice, bob = open_board(board), open_board(board)
    shapes = [  # tool, colour, drag from, drag to
        ("line", ORANGE, (100, 80), (300, 120)),
        ("arrow", GREEN, (100, 180), (300, 180)),
        ("rect", MAGENTA, (400, 80), (600, 180)),
        ("ellipse", CYAN, (400, 250), (560, 370)),
    ]
    for count, (tool, color, start, end) in enumerate(shapes, 1):
        alice.tool(tool)
        alice.color(color)
        alice.drag([start, end])
        alice.wait_count(count)

    expected = ["line", "arrow", "rect", "ellipse"]
    for page in (alice, bob):
        assert kinds(page.wait_count(4)) == expected
        shot = page.wait_pixels(
            lambda s: all(s.count(c) > 50 for _, c, _, _ in shapes), "all four shapes"
        )
        assert size(shot.box(MAGENTA)) == pytest.approx((200, 100), abs=8)
        assert size(shot.box(CYAN)) == pytest.approx((160, 120), abs=8)
        assert size(shot.box(ORANGE))[0] == pytest.approx(200, abs=8)
        # An arrow is wider than its shaft: the head sticks out above and below.
        assert size(shot.box(GREEN))[1] > 8
    alice.wait_confirmed()
    stored = live_data.elements(board)
    assert kinds(stored) == expected
    assert [e["color"].lower() for e in stored] == [s[1] for s in shapes]


def test_the_eraser_removes_a_stroke_from_both_pages_and_the_board(
    open_board, board, live_data
):
    alice, bob = open_board(board), open_board(board)
    alice.color(MAGENTA)
    alice.drag([(150, 150), (400, 150)])
    bob.wait_pixels(lambda s: s.count(MAGENTA) > 100, "the stroke on Bob's page")

    alice.tool("eraser")
    alice.drag([(275, 100), (275, 200)])
    for page in (alice, bob):
        page.wait_count(0)
        page.wait_pixels(lambda s: s.count(MAGENTA) == 0, "a blank board after erasing")
    alice.wait_confirmed()
    assert live_data.elements(board) == []
    assert len(live_data.elements(board, deleted=True)) == 1


def test_undo_and_redo_by_button_and_keyboard_on_both_pages(
    open_board, board, live_data
):
    alice, bob = open_board(board), open_board(board)
    alice.tool("rect")
    alice.color(MAGENTA)
    alice.drag([(200, 200), (400, 300)])

    def shown_everywhere(present):
        count = 1 if present else 0
        for page in (alice, bob):
            page.wait_count(count)
            page.wait_pixels(
                lambda s: (s.count(MAGENTA) > 100) == present,
                "the rectangle" if present else "no rectangle",
            )
        alice.wait_confirmed()
        assert len(live_data.elements(board)) == count

    shown_everywhere(True)
    alice.page.locator("button#undo").click()
    shown_everywhere(False)
    alice.page.locator("button#redo").click()
    shown_everywhere(True)
    alice.board.focus()
    alice.page.keyboard.press("Control+z")
    shown_everywhere(False)
    alice.page.keyboard.press("Control+Shift+z")
    shown_everywhere(True)
    alice.page.keyboard.press("Control+z")
    shown_everywhere(False)
    alice.page.keyboard.press("Control+y")
    shown_everywhere(True)


def test_undo_on_another_page_does_not_undo_my_rectangle(open_board, board):
    """History is per person: Bob's Ctrl+Z has nothing of his own to undo."""
    alice, bob = open_board(board), open_board(board)
    alice.tool("rect")
    alice.color(MAGENTA)
    alice.drag([(200, 200), (400, 300)])
    bob.wait_count(1)
    bob.board.focus()
    bob.expect_received(
        lambda frame: frame.get("code") == "nothing_to_undo",
        lambda: bob.page.keyboard.press("Control+z"),
    )
    for page in (alice, bob):
        assert len(page.elements()) == 1
        page.wait_pixels(lambda s: s.count(MAGENTA) > 100, "Alice's rectangle")


def test_select_drag_moves_a_shape_and_delete_removes_it_on_both_pages(
    open_board, board, live_data
):
    alice, bob = open_board(board), open_board(board)
    alice.tool("rect")
    alice.color(MAGENTA)
    alice.drag([(200, 200), (300, 260)])
    bob.wait_pixels(lambda s: s.box(MAGENTA) is not None, "the rectangle")
    left, top, _, _ = bob.shot().box(MAGENTA)
    alice.wait_confirmed()
    [before] = live_data.elements(board)

    alice.tool("select")
    alice.drag([(200, 230), (320, 330)])  # grab its left edge, move by (120, 100)
    shot = bob.wait_pixels(
        lambda s: (
            (s.box(MAGENTA) or (0, 0))[:2]
            == pytest.approx((left + 120, top + 100), abs=3)
        ),
        "the rectangle moved by (120, 100)",
    )
    assert size(shot.box(MAGENTA)) == pytest.approx((100, 60), abs=8)
    alice.wait_confirmed()
    [stored] = live_data.elements(board)
    moved = (stored["x"] - before["x"], stored["y"] - before["y"])
    assert moved[0] / moved[1] == pytest.approx(1.2, abs=0.1), moved
    assert kinds(bob.elements()) == ["rect"]

    alice.board.focus()
    alice.page.keyboard.press("Delete")
    for page in (alice, bob):
        page.wait_count(0)
        page.wait_pixels(lambda s: s.count(MAGENTA) == 0, "no rectangle")
    alice.wait_confirmed()
    assert live_data.elements(board) == []
    assert [e["id"] for e in live_data.elements(board, deleted=True)] == [stored["id"]]


def test_each_tool_has_its_keyboard_shortcut(open_board, board):
    alice = open_board(board)
    alice.board.focus()
    keys = {"p": "pen", "l": "line", "a": "arrow", "r": "rect", "o": "ellipse"}
    keys.update({"t": "text", "e": "eraser", "v": "select"})
    for key, tool in keys.items():
        alice.page.keyboard.press(key)
        button = alice.page.locator(f'button[data-tool="{tool}"]')
        expect(button).to_have_attribute("aria-pressed", "true")
        expect(
            alice.page.locator('button[aria-pressed="true"][data-tool]')
        ).to_have_count(1)
