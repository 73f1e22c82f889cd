"""Sticky notes and images on the board page, as two people on one board see them.

A note typed on one page shows on the other while it is typed (drafts) and
once finished (the stored element); an image pasted or dropped on one page is
uploaded and shows on the other (its pixels); the select tool's corner handle
resizes it keeping its aspect, and undo gives the old size back on both pages; a
file that is not an image is refused with a notice; the PNG export holds the
image's and the note's pixels. Playwright cannot use the OS clipboard or drag
files from the desktop headless, so the paste and the drop are real
ClipboardEvent and DragEvent objects built in the page around a File.
"""

import base64
import io
import time

import pytest
from PIL import Image
from playwright.sync_api import expect

from .pixels import Shot

# Every test but the refused upload's (whose 415 the browser logs) keeps
# the pages' consoles free of errors.
pytestmark = pytest.mark.browser

MAGENTA = "#ff00ff"
NOTE_YELLOW = "#fff3a3"
TEAL = "#00a0a0"  # the test image's colour
IMAGE_SIZE = (120, 60)

DISPATCH_FILE = """
async ({ kind, b64, name, type, x, y }) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const file = new File([bytes], name, { type });
  const data = new DataTransfer();
  data.items.add(file);
  const board = document.getElementById("board");
  const rect = board.getBoundingClientRect();
  if (kind === "paste") {
    const init = { clipboardData: data, bubbles: true, cancelable: true };
    document.body.dispatchEvent(new ClipboardEvent("paste", init));
  } else {
    const init = { clientX: rect.left + x, clientY: rect.top + y, dataTransfer: data };
    Object.assign(init, { bubbles: true, cancelable: true });
    const target = document.getElementById("overlay-canvas");
    target.dispatchEvent(new DragEvent("dragover", init));
    target.dispatchEvent(new DragEvent("drop", init));
  }
}
"""


def png_bytes(color=TEAL, size=IMAGE_SIZE):
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def send_file(page, kind, data, name="picture.png", type_="image/png", at=(0, 0)):
    """Paste (`kind="paste"`) or drop at `at` a file holding `data` on the page."""
    page.page.evaluate(
        DISPATCH_FILE,
        {
            "kind": kind,
            "b64": base64.b64encode(data).decode(),
            "name": name,
            "type": type_,
            "x": at[0],
            "y": at[1],
        },
    )


def write_note(page, text, at=(150, 150)):
    """Place a note at `at`, type `text`, finish: once the note is confirmed."""
    page.tool("note")
    page.click_at(*at)
    editor = page.page.locator("textarea#note-editor")
    editor.press_sequentially(text)
    editor.press("Escape")
    page.wait_for(f"els => els.some(e => e.kind === 'note' && e.text === {text!r})")
    page.wait_confirmed()


def size(box):
    left, top, right, bottom = box
    return right - left, bottom - top


def images(elements):
    return [el for el in elements if el["kind"] == "image"]


@pytest.mark.clean_console
def test_a_note_typed_on_one_page_shows_on_the_other_while_typed_and_when_done(
    open_board, board, live_data
):
    alice, bob = open_board(board), open_board(board)
    alice.color(MAGENTA)
    alice.tool("note")
    alice.click_at(300, 250)
    editor = alice.page.locator("textarea#note-editor")
    expect(editor).to_be_focused()
    [placed] = bob.wait_count(1)
    assert (placed["kind"], placed["text"], placed["w"], placed["h"]) == (
        "note",
        "",
        200,
        200,
    )
    # Bob's page shows the note, in its colour, centred on Alice's click.
    shot = bob.wait_pixels(lambda s: s.count(NOTE_YELLOW, 10) > 30000, "the note")
    left, top, right, bottom = shot.box(NOTE_YELLOW, 10)
    assert (left + right) / 2 == pytest.approx(300, abs=6)
    assert (top + bottom) / 2 == pytest.approx(250, abs=6)

    editor.press_sequentially("Hello board")
    # Bob sees the text while it is typed: glyphs in the text colour inside the
    # note, while the stored note (his page's copy of it) is still empty.
    deadline = time.monotonic() + 10
    while True:
        glyphs = bob.shot().count(MAGENTA)
        [shown] = bob.elements()
        if glyphs > 40:
            break
        assert shown["text"] == "", "the text was committed before the draft showed"
        assert time.monotonic() < deadline, "the typed text never showed on Bob's page"
    assert shown["text"] == "", "the text was committed before the draft showed"

    editor.press("Escape")
    expect(editor).to_have_count(0)
    for page in (alice, bob):
        page.wait_for("els => els.length === 1 && els[0].text === 'Hello board'")
        shot = page.wait_pixels(lambda s: s.count(MAGENTA) > 40, "the note's text")
        left, top, right, bottom = shot.box(MAGENTA)
        assert left >= 200 and top >= 150 and right <= 400 and bottom <= 350
    alice.wait_confirmed()
    [stored] = live_data.elements(board)
    assert (stored["kind"], stored["text"], stored["fill"]) == (
        "note",
        "Hello board",
        NOTE_YELLOW,
    )
    assert stored["color"].lower() == MAGENTA
    assert "width" not in stored


@pytest.mark.clean_console
def test_a_double_click_edits_a_note_again_with_the_select_tool(open_board, board):
    alice, bob = open_board(board), open_board(board)
    alice.tool("note")
    alice.click_at(300, 250)
    editor = alice.page.locator("textarea#note-editor")
    editor.press_sequentially("First")
    alice.tool("select")  # the editor loses the focus: the text is committed
    expect(editor).to_have_count(0)
    bob.wait_for("els => els.length === 1 && els[0].text === 'First'")

    alice.page.mouse.dblclick(*alice.at(300, 250))
    expect(editor).to_be_focused()
    expect(editor).to_have_value("First")
    editor.press_sequentially(" and second")
    alice.click_at(600, 450)  # a click outside ends the edit
    expect(editor).to_have_count(0)
    for page in (alice, bob):
        page.wait_for("els => els.length === 1 && els[0].text === 'First and second'")


@pytest.mark.clean_console
def test_a_pasted_image_is_uploaded_and_shows_on_the_other_page(
    open_board, board, live_data
):
    alice, bob = open_board(board), open_board(board)
    with alice.page.expect_response(lambda r: "/assets/" in r.url) as answer:
        send_file(alice, "paste", png_bytes())
    assert answer.value.status == 201
    # The placeholder shown during the upload is gone once the image is placed.
    expect(alice.page.locator(".upload-placeholder")).to_have_count(0)
    for page in (alice, bob):
        [element] = page.wait_count(1)
        assert element["kind"] == "image"
        assert (element["w"], element["h"]) == IMAGE_SIZE
        shot = page.wait_pixels(lambda s: s.count(TEAL, 8) > 6000, "the image")
        assert size(shot.box(TEAL, 8)) == pytest.approx(IMAGE_SIZE, abs=2)
    alice.wait_confirmed()
    [stored] = live_data.elements(board)
    assert stored["kind"] == "image" and stored["asset"] == element["asset"]


@pytest.mark.clean_console
def test_a_dropped_image_lands_where_it_was_dropped_and_resizes_keeping_its_aspect(
    open_board, board, live_data
):
    alice, bob = open_board(board), open_board(board)
    send_file(alice, "drop", png_bytes(), at=(400, 300))
    [element] = bob.wait_count(1)
    shot = bob.wait_pixels(lambda s: s.count(TEAL, 8) > 6000, "the dropped image")
    left, top, right, bottom = shot.box(TEAL, 8)
    assert ((left + right) / 2, (top + bottom) / 2) == pytest.approx((400, 300), abs=3)
    alice.wait_confirmed()

    # Select the image, then drag its south-east handle 120 px right.
    alice.tool("select")
    alice.click_at(400, 300)
    corner = (element["x"] + element["w"], element["y"] + element["h"])
    alice.drag([corner, (corner[0] + 120, corner[1] + 10)])
    for page in (alice, bob):
        page.wait_for("els => els.length === 1 && els[0].w === 240")
        [resized] = page.elements()
        assert (resized["x"], resized["y"], resized["h"]) == (
            element["x"],
            element["y"],
            120,
        )
    shot = bob.wait_pixels(
        lambda s: size(s.box(TEAL, 8) or (0, 0, 0, 0))[0] > 230, "the bigger image"
    )
    assert size(shot.box(TEAL, 8)) == pytest.approx((240, 120), abs=3)
    alice.wait_confirmed()
    [stored] = live_data.elements(board)
    assert (stored["w"], stored["h"]) == (240, 120)

    # Undo gives the old size back, on both pages and in the database.
    alice.board.focus()
    alice.page.keyboard.press("Control+z")
    for page in (alice, bob):
        page.wait_for("els => els.length === 1 && els[0].w === 120 && els[0].h === 60")
    bob.wait_pixels(
        lambda s: (
            size(s.box(TEAL, 8) or (0, 0, 0, 0)) == pytest.approx((120, 60), abs=3)
        ),
        "the image at its old size",
    )
    alice.wait_confirmed()
    [stored] = live_data.elements(board)
    assert (stored["w"], stored["h"]) == (120, 60)


def test_a_file_that_is_not_an_image_is_refused_with_a_notice(
    open_board, board, live_data
):
    alice, bob = open_board(board), open_board(board)
    notices = alice.page.locator("#notices .notice.error")

    # An SVG is refused before it is sent.
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    send_file(alice, "drop", svg, name="evil.svg", type_="image/svg+xml", at=(300, 300))
    expect(notices.last).to_contain_text("Only PNG, JPEG, GIF and WebP")

    # Text renamed .png is sent (the browser trusts the name); the server refuses it.
    with alice.page.expect_response(lambda r: "/assets/" in r.url) as answer:
        send_file(alice, "drop", b"just some text", name="fake.png", at=(300, 300))
    assert answer.value.status == 415
    expect(notices).to_have_count(2)
    expect(notices.last).to_contain_text("fake.png")
    expect(notices.last).to_contain_text("Only PNG, JPEG, GIF and WebP")
    expect(alice.page.locator(".upload-placeholder")).to_have_count(0)

    # Nothing was added anywhere.
    alice.tool("rect")
    alice.drag([(100, 100), (150, 150)])
    bob.wait_count(1)
    assert [el["kind"] for el in bob.elements()] == ["rect"]
    alice.wait_confirmed()
    assert [el["kind"] for el in live_data.elements(board)] == ["rect"]


@pytest.mark.clean_console
def test_the_png_export_holds_the_image_and_the_note(open_board, board):
    alice = open_board(board)
    send_file(alice, "paste", png_bytes())
    alice.wait_count(1)
    write_note(alice, "Export me")

    with alice.page.expect_download() as download:
        alice.page.locator("button#export-png").click()
    exported = Shot(download.value.path().read_bytes())
    # The export is drawn at twice the board's scale.
    assert exported.count(TEAL, 8) == pytest.approx(
        4 * IMAGE_SIZE[0] * IMAGE_SIZE[1], rel=0.05
    )
    assert exported.count(NOTE_YELLOW, 10) > 4 * 150 * 150


@pytest.mark.clean_console
def test_the_svg_export_embeds_the_image_as_a_data_url(open_board, board):
    alice = open_board(board)
    send_file(alice, "paste", png_bytes())
    alice.wait_count(1)
    alice.wait_confirmed()
    with alice.page.expect_download() as download:
        alice.page.locator("button#export-svg").click()
    svg = download.value.path().read_text()
    assert '<image href="data:image/png;base64,' in svg
    start = svg.index("data:image/png;base64,") + len("data:image/png;base64,")
    data = base64.b64decode(svg[start : svg.index('"', start)])
    picture = Image.open(io.BytesIO(data)).convert("RGB")
    assert picture.size == IMAGE_SIZE
    assert picture.getpixel((10, 10)) == (0, 0xA0, 0xA0)


@pytest.mark.clean_console
def test_the_palette_restyles_a_note_and_an_image_only_with_their_own_fields(
    open_board, board, live_data
):
    alice, bob = open_board(board), open_board(board)
    send_file(alice, "paste", png_bytes())
    alice.wait_count(1)  # the image first: the note is drawn above it
    write_note(alice, "Hi")

    alice.tool("select")
    alice.drag([(5, 5), (1000, 650)])  # a band around both
    updates_before = alice.sent_types().count("update")
    # A width means nothing to either kind: nothing is sent. A colour is the
    # note's text colour; an image has none.
    alice.page.locator('[data-width="8"]').click()
    alice.expect_sent(
        "update", lambda: alice.page.locator('[data-color="#cf222e"]').click()
    )
    updates = [f for f in alice.sent if f.get("type") == "update"][updates_before:]
    assert [u["set"] for u in updates] == [{"color": "#cf222e"}]
    for page in (alice, bob):
        page.wait_for("els => els[1].color === '#cf222e'")
    alice.wait_confirmed()
    expect(alice.page.locator("#notices .notice.error")).to_have_count(0)
    image, note = live_data.elements(board)
    assert "color" not in image and "width" not in image
    assert note["color"] == "#cf222e" and "width" not in note


@pytest.mark.clean_console
def test_a_note_colour_recolours_the_selected_notes(open_board, board, live_data):
    """With only notes selected, the note colours replace the widths (a note
    has none), and picking one sets the notes' fill, for everyone."""
    alice, bob = open_board(board), open_board(board)
    alice.tool("note")
    alice.click_at(150, 150)
    alice.page.keyboard.press("Escape")
    alice.wait_for("els => els.length === 1")
    alice.wait_confirmed()
    note_colors = alice.page.locator("#note-colors")
    widths = alice.page.locator("#widths")

    alice.tool("select")
    expect(note_colors).to_be_hidden()
    alice.click_at(150, 150)
    expect(note_colors).to_be_visible()
    expect(widths).to_be_hidden()
    alice.expect_sent(
        "update", lambda: alice.page.locator('[data-note-color="#cfe8ff"]').click()
    )
    for page in (alice, bob):
        page.wait_for("els => els[0].fill === '#cfe8ff'")
    alice.wait_confirmed()
    assert live_data.elements(board)[0]["fill"] == "#cfe8ff"

    alice.page.keyboard.press("Escape")  # nothing selected: the widths again
    expect(widths).to_be_visible()
    expect(note_colors).to_be_hidden()
