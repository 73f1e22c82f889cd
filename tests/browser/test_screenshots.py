"""Screenshots of the board page kept as test artifacts, and the PNG export."""

import pytest
from playwright.sync_api import expect

from .pixels import Shot
from .test_notes_images import TEAL, png_bytes, send_file, write_note

pytestmark = pytest.mark.browser

MAGENTA, CYAN = "#ff00ff", "#00ffff"
NOTE_YELLOW = "#fff3a3"


def draw_something(page):
    page.color(MAGENTA)
    page.drag([(120, 160), (220, 120), (320, 200), (420, 140)])
    page.tool("rect")
    page.color(CYAN)
    page.drag([(150, 260), (400, 380)])
    page.type_text(160, 420, "Screenshot test")
    page.wait_count(3)
    send_file(page, "drop", png_bytes(size=(240, 160)), at=(640, 220))
    page.wait_count(4)
    page.color("#1f2328")  # the note's text colour
    write_note(page, "Sticky notes and images", at=(640, 480))
    page.wait_confirmed()


def test_a_screenshot_of_the_board_page_is_saved_as_an_artifact(
    open_board, board, artifacts
):
    alice, bob = open_board(board), open_board(board)
    draw_something(alice)

    def drawn(shot):
        colours = (MAGENTA, CYAN, TEAL, NOTE_YELLOW)
        return all(shot.count(colour) > 100 for colour in colours)

    bob.wait_pixels(drawn, "the drawing, the image and the note")
    path = artifacts / "board-page.png"
    bob.page.screenshot(path=path)
    shot = Shot(path.read_bytes())
    assert shot.image.size == (1280, 800)
    assert drawn(shot)
    expect(bob.page.locator("#people li")).to_have_count(2)


def test_on_a_phone_the_board_fills_the_screen_without_sideways_scrolling(
    browser, daphne, board, artifacts
):
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=3, has_touch=True
    )
    try:
        page = context.new_page()
        page.goto(f"{daphne.origin}/b/{board}/")
        expect(page.locator("#connection-status")).to_have_attribute(
            "data-state", "online"
        )
        page.screenshot(path=artifacts / "board-page-phone.png")
        box = page.locator("#board").bounding_box()
        assert box["width"] >= 300 and box["height"] >= 300, box
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        # Crisp on a 3x screen: the canvas has a pixel for every device pixel.
        canvas = page.evaluate(
            "() => { const c = document.getElementById('board-canvas');"
            " return [c.width, c.height, c.clientWidth, c.clientHeight]; }"
        )
        assert canvas[:2] == [round(canvas[2] * 3), round(canvas[3] * 3)], canvas
        for tool in ("pen", "eraser", "select"):
            expect(page.locator(f'button[data-tool="{tool}"]')).to_be_in_viewport()
    finally:
        context.close()


def test_the_png_export_is_the_drawing(open_board, board, tmp_path):
    alice = open_board(board)
    draw_something(alice)
    with alice.page.expect_download() as download:
        alice.page.locator("button#export-png").click()
    assert download.value.suggested_filename == f"{board}.png"
    path = tmp_path / "export.png"
    download.value.save_as(path)
    shot = Shot(path.read_bytes())
    assert shot.count(MAGENTA) > 100 and shot.count(CYAN) > 100
