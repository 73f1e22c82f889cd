"""The history page in a real Chromium: the board at an earlier op, an
element's ops, and an owner's restore, which the board page shows live."""

import pytest
from playwright.sync_api import expect

from .pixels import Shot, wait_for_shot

pytestmark = pytest.mark.browser

PASSWORD = "history-pw-5k2j"
# Three strokes, in colours found nowhere else on the page (the history's
# outlines are #0969da and #bc4c00).
MAGENTA, CYAN, YELLOW = "#ff00ff", "#00ffff", "#ffcc00"
STROKES = [
    (MAGENTA, [(150, 150), (300, 170), (350, 200)]),
    (CYAN, [(150, 300), (300, 320), (350, 350)]),
    (YELLOW, [(450, 150), (550, 250), (600, 300)]),
]


def counts(shot):
    return {color: shot.count(color) for color in (MAGENTA, CYAN, YELLOW)}


def showing(shot, *colors):
    """Exactly these strokes are on screen."""
    seen = counts(shot)
    return all((seen[color] > 100) == (color in colors) for color in seen)


def test_the_history_shows_earlier_versions_and_the_owner_restores_one(
    open_board, live_data, artifacts
):
    owner = live_data.create_user(PASSWORD)
    board = live_data.create_board(owner=owner)
    alice = open_board(board, login=(owner, PASSWORD))
    alice.tool("pen")
    alice.width(6)
    for color, path in STROKES:
        alice.color(color)
        alice.drag(path)
    alice.wait_count(3)
    alice.wait_confirmed()
    first_id = alice.elements()[0]["id"]

    page = alice.page.context.new_page()
    errors, console = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: m.type == "error" and console.append(m.text))
    page.goto(f"{alice.origin}/b/{board}/history/")
    surface = page.locator("#board")
    ops = page.locator("#ops li")

    def wait_shown(seq, count):
        expect(surface).to_have_attribute("data-state", "ready")
        expect(surface).to_have_attribute("data-seq", str(seq))
        expect(surface).to_have_attribute("data-count", str(count))

    # The latest version first, and the ops newest first.
    wait_shown(3, 3)
    expect(ops).to_have_count(3)
    expect(ops.first).to_contain_text("#3")
    expect(ops.last).to_contain_text("add")
    wait_for_shot(surface, lambda s: showing(s, MAGENTA, CYAN, YELLOW), 10, "all 3")

    # The first op: only the first stroke, outlined as the op's.
    ops.last.locator("button").click()
    wait_shown(1, 1)
    expect(ops.last.locator("button")).to_have_attribute("aria-current", "true")
    assert page.evaluate("() => window.whiteboardHistory.highlighted()") == [first_id]
    shot = wait_for_shot(surface, lambda s: showing(s, MAGENTA), 10, "the first op")
    assert shot.count("#0969da", tolerance=30) > 50, "the op's outline"

    # The slider, one seq on (the keyboard moves it), then the next op button.
    page.locator("#seq-slider").focus()
    page.keyboard.press("ArrowRight")
    wait_shown(2, 2)
    page.locator("#step-next").click()
    wait_shown(3, 3)
    wait_for_shot(surface, lambda s: showing(s, MAGENTA, CYAN, YELLOW), 10, "latest")
    page.locator("#step-prev").click()
    wait_shown(2, 2)
    wait_for_shot(surface, lambda s: showing(s, MAGENTA, CYAN), 10, "the second op")

    # An element's own ops: click the first stroke on the shown board.
    box = surface.bounding_box()
    page.mouse.click(box["x"] + 150, box["y"] + 150)
    expect(page.locator("#element-history")).to_be_visible()
    expect(page.locator("#element-id")).to_have_text(first_id)
    expect(page.locator("#element-ops li")).to_have_count(1)
    expect(page.locator("#element-ops li")).to_contain_text("#1")

    # By time: before the first op, the board was empty.
    page.locator("#time-input").fill("2000-01-01T00:00:00")
    page.locator("#time-form button[type=submit]").click()
    wait_shown(0, 0)

    # The owner restores the first version; the board page, live, follows.
    ops.last.locator("button").click()
    wait_shown(1, 1)
    page.locator("#restore").click()
    message = page.locator("#history-message")
    expect(message).to_contain_text("back as it was after seq 1")
    expect(message.locator("a")).to_have_attribute("href", f"/b/{board}/")
    wait_shown(4, 1)  # the restore is op 4, shown as the latest
    expect(ops.first).to_contain_text("restore")
    page.screenshot(path=artifacts / "history-page.png")

    [left] = alice.wait_count(1)
    assert left["id"] == first_id
    alice.wait_pixels(lambda s: showing(s, MAGENTA), "the board restored")
    assert [e["id"] for e in live_data.elements(board)] == [first_id]
    assert not errors, errors
    assert not console, console


def test_a_viewer_has_no_restore_button(open_board, live_data, browser, daphne):
    board = live_data.create_board(visitor_role="viewer")
    page = browser.new_context().new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{daphne.origin}/b/{board}/history/")
    surface = page.locator("#board")
    expect(surface).to_have_attribute("data-state", "ready")
    expect(surface).to_have_attribute("data-count", "0")
    expect(page.locator("#restore")).to_have_count(0)
    expect(page.locator("#ops-status")).to_have_text("No ops kept for this board.")
    assert Shot(surface.screenshot()).count(MAGENTA) == 0
    page.context.close()
    assert not errors, errors
