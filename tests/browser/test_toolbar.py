"""The toolbar: one row of icon buttons at 1024 px in both colour schemes, a
palette and line width presets that style what is drawn next and the selection."""

import re

import pytest
from playwright.sync_api import expect

from tests.live import VIEWPORT

pytestmark = pytest.mark.browser

PASSWORD = "toolbar-pw-8d3q"
RED, BLUE = "#cf222e", "#0969da"  # palette swatches "Red" and "Blue"
PAPER = "#ffffff"
PINK_NOTE = "#ffd6e7"  # the note colour swatch "Pink note"
SMALL_LAPTOP = {"width": 1024, "height": 768}

# The boxes of the visible controls of the toolbar and the header, in page pixels.
BOXES = """() => {
  const boxes = (selector) => [...document.querySelectorAll(selector)]
    .filter((el) => el.checkVisibility())
    .map((el) => {
      const r = el.getBoundingClientRect();
      return { what: el.id || el.getAttribute("aria-label") || el.textContent.trim(),
               top: r.top, bottom: r.bottom, left: r.left, right: r.right };
    });
  return {
    toolbar: boxes(".board-toolbar button, .board-toolbar input"),
    header: boxes(".site-name, .site-nav > *"),
    scrollWidth: document.documentElement.scrollWidth,
  };
}"""


def in_one_row(boxes):
    """Every box crosses one horizontal line: none sits below another."""
    return max(b["top"] for b in boxes) < min(b["bottom"] for b in boxes)


def styled_context(browser, viewport, scheme, console):
    context = browser.new_context(
        viewport=viewport, device_scale_factor=1, color_scheme=scheme
    )
    context.on("console", lambda m: m.type == "error" and console.append(m.text))
    return context


def assert_one_row(page, width):
    found = page.evaluate(BOXES)
    toolbar, header = found["toolbar"], found["header"]
    assert len(toolbar) >= 25, toolbar
    assert in_one_row(toolbar), toolbar
    assert in_one_row(header), header
    assert found["scrollWidth"] <= width
    for box in toolbar + header:
        assert box["left"] >= 0 and box["right"] <= width, box


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_toolbar_and_the_header_fit_one_row_at_1024_px(
    browser, open_board, live_data, artifacts, scheme
):
    owner = live_data.create_user(PASSWORD)  # the longest header: Settings, account
    board = live_data.create_board(owner=owner, title="A board with a long title " * 3)
    console = []
    context = styled_context(browser, SMALL_LAPTOP, scheme, console)
    alice = open_board(board, context=context, login=(owner, PASSWORD))
    page = alice.page
    expect(page.locator("#board-settings")).to_be_visible()
    assert_one_row(page, 1024)
    page.screenshot(path=artifacts / f"toolbar-1024-{scheme}.png")

    # The page follows the scheme; the drawing surface stays white paper.
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(255, 255, 255)") == (scheme == "light"), background
    paper = alice.shot()
    width, height = paper.image.size
    assert paper.count(PAPER, tolerance=2) > 0.95 * width * height

    # With the note tool, note colours take the width presets' place: still one row.
    alice.tool("note")
    expect(page.locator("#note-colors")).to_be_visible()
    expect(page.locator("#widths")).to_be_hidden()
    assert_one_row(page, 1024)
    alice.tool("pen")
    expect(page.locator("#note-colors")).to_be_hidden()
    assert console == [], console


def test_the_toolbar_fits_one_row_at_1280_px_and_wraps_without_overflow_on_a_phone(
    browser, open_board, board
):
    console = []
    light = styled_context(browser, VIEWPORT, "light", console)
    wide = open_board(board, context=light)
    assert_one_row(wide.page, VIEWPORT["width"])
    phone = {"width": 390, "height": 844}
    narrow = open_board(board, context=styled_context(browser, phone, "dark", console))
    found = narrow.page.evaluate(BOXES)
    assert found["scrollWidth"] <= 390
    for box in found["toolbar"]:
        assert box["left"] >= 0 and box["right"] <= 390, box
    assert console == [], console


def test_every_toolbar_button_has_an_accessible_name_and_a_tooltip(open_board, board):
    alice = open_board(board)
    buttons = alice.page.locator(".board-toolbar button:visible")
    assert buttons.count() >= 25
    alice.tool("note")  # the note colours show only with the note tool
    notes = alice.page.locator("#note-colors button")
    assert notes.count() >= 4
    for button in buttons.all() + notes.all():
        expect(button).to_have_accessible_name(re.compile(r"\w"))
        expect(button).to_have_attribute("title", re.compile(r"\w"))
    # Icons are decoration: screen readers get the button's label only.
    icons = alice.page.locator(".board-toolbar svg")
    hidden = alice.page.locator(".board-toolbar svg[aria-hidden=true]")
    assert icons.count() == hidden.count() >= 15
    expect(alice.page.get_by_role("button", name="Sticky note")).to_have_attribute(
        "title", "Sticky note (N)"
    )
    expect(alice.page.get_by_role("button", name="Insert image")).to_have_attribute(
        "title", "Insert image (I)"
    )
    # The arrow keys move along the toolbar, as in any toolbar.
    alice.page.locator('button[data-tool="pen"]').focus()
    alice.page.keyboard.press("ArrowRight")
    expect(alice.page.locator('button[data-tool="line"]')).to_be_focused()
    alice.page.keyboard.press("End")
    expect(alice.page.locator("button#export-svg")).to_be_focused()
    alice.page.keyboard.press("ArrowLeft")
    expect(alice.page.locator("button#export-png")).to_be_focused()


def test_a_swatch_colours_the_next_stroke_and_restyles_the_selection(
    open_board, board, live_data
):
    alice = open_board(board)
    red = alice.page.get_by_role("button", name="Red", exact=True)
    red.click()
    expect(red).to_have_attribute("aria-pressed", "true")
    expect(alice.page.locator('[data-color][aria-pressed="true"]')).to_have_count(1)
    alice.drag([(150, 200), (300, 240), (450, 200)])
    alice.wait_pixels(lambda s: s.count(RED) > 100, "a red stroke")
    alice.wait_confirmed()
    [stroke] = live_data.elements(board)
    assert stroke["color"] == RED

    alice.tool("select")
    alice.click_at(300, 240)
    alice.page.get_by_role("button", name="Blue", exact=True).click()
    alice.wait_for("(els, c) => els.length === 1 && els[0].color === c", BLUE)
    alice.wait_pixels(lambda s: s.count(BLUE) > 100 and s.count(RED) == 0, "blue")
    alice.wait_confirmed()
    assert [e["color"] for e in live_data.elements(board)] == [BLUE]

    # A custom colour: no swatch is pressed.
    alice.color("#ff00ff")
    expect(alice.page.locator('[data-color][aria-pressed="true"]')).to_have_count(0)


def band(shot, y):
    """The box of the red pixels near the line drawn at `y`, or None."""
    return shot.mask(RED, tolerance=60).crop((100, y - 40, 500, y + 40)).getbbox()


def test_a_width_preset_sets_the_width_of_the_next_line(open_board, board, live_data):
    alice = open_board(board)
    alice.tool("line")
    alice.color(RED)
    heights = {}
    for width, y in ((16, 150), (2, 350)):
        button = alice.page.locator(f'button[data-width="{width}"]')
        button.click()
        expect(button).to_have_attribute("aria-pressed", "true")
        expect(alice.page.locator('[data-width][aria-pressed="true"]')).to_have_count(1)
        alice.drag([(150, y), (450, y)])
        shot = alice.wait_pixels(lambda s, y=y: band(s, y), f"the {width} px line")
        left, top, right, bottom = band(shot, y)
        heights[width] = bottom - top
    assert heights[16] == pytest.approx(16, abs=3), heights
    assert heights[2] == pytest.approx(2, abs=2), heights
    alice.wait_confirmed()
    assert [e["width"] for e in live_data.elements(board)] == [16, 2]


def test_note_colours_show_with_the_note_tool_and_colour_the_next_note(
    open_board, board, live_data
):
    alice = open_board(board)
    colours, widths = alice.page.locator("#note-colors"), alice.page.locator("#widths")
    expect(colours).to_be_hidden()
    alice.tool("note")
    expect(colours).to_be_visible()
    expect(widths).to_be_hidden()
    pink = alice.page.get_by_role("button", name="Pink note")
    pink.click()
    expect(pink).to_have_attribute("aria-pressed", "true")
    expect(colours.locator('[aria-pressed="true"]')).to_have_count(1)

    alice.click_at(300, 250)
    editor = alice.page.locator("textarea#note-editor")
    expect(editor).to_be_focused()
    editor.press("Escape")
    alice.wait_pixels(lambda s: s.count(PINK_NOTE, 10) > 30000, "a pink note")
    alice.wait_confirmed()
    [stored] = live_data.elements(board)
    assert (stored["kind"], stored["fill"]) == ("note", PINK_NOTE)

    alice.tool("pen")
    expect(colours).to_be_hidden()
    expect(widths).to_be_visible()
