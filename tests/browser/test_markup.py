"""Markup typed by a user stays text everywhere: page, people list, notices, SVG."""

import xml.etree.ElementTree as ET

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

TEXT = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>&amp;'
NAME = "<img src=x onerror=window.pwned=3>"
TITLE = "<b>Plans</b><img src=x onerror=window.pwned=4>"
SVG = "{http://www.w3.org/2000/svg}"

# Nothing a user typed may become an element or run: no <img>, nothing ran.
NO_INJECTION = """() => window.pwned === undefined
    && document.querySelectorAll('img, b, script:not([type])').length === 0"""


def test_markup_in_text_names_and_titles_is_shown_as_typed_and_never_runs(
    open_board, live_data, tmp_path
):
    board = live_data.create_board(title=TITLE)
    alice, bob = open_board(board), open_board(board)
    expect(bob.page.locator("#board-title")).to_have_text(TITLE)

    alice.type_text(200, 200, TEXT)
    for page in (alice, bob):
        [element] = page.wait_count(1)
        assert element["text"] == TEXT
    alice.wait_confirmed()
    assert [e["text"] for e in live_data.elements(board)] == [TEXT]

    rename(alice, NAME)
    people = bob.page.locator("#people li")
    expect(people.filter(has_text=NAME)).to_have_count(1)
    expect(
        bob.page.locator("#notices .notice").filter(has_text=NAME)
    ).not_to_have_count(0)

    for page in (alice, bob):
        assert page.page.evaluate(NO_INJECTION), "markup became part of the page"
    svg_texts = exported_svg_texts(bob, tmp_path)
    assert TEXT in svg_texts


def rename(page, name):
    """Rename with the form on the page; the page reconnects under the new name."""
    form = page.page.locator("#guest-name")
    form.locator("input[name=name]").fill(name)
    form.locator("button[type=submit]").click()
    expect(page.page.locator("#guest-name input[name=name]")).to_have_value(name)


def exported_svg_texts(page, tmp_path):
    """Download the SVG export; check it holds no markup; return its text runs."""
    with page.page.expect_download() as download:
        page.page.locator("button#export-svg").click()
    assert download.value.suggested_filename == f"{page.slug}.svg"
    path = tmp_path / "board.svg"
    download.value.save_as(path)
    root = ET.parse(path).getroot()  # well-formed XML, or this raises
    tags = {node.tag.removeprefix(SVG) for node in root.iter()}
    assert not tags & {"img", "script", "foreignObject", "b"}, tags
    handlers = [a for node in root.iter() for a in node.attrib if a.startswith("on")]
    assert not handlers, handlers
    return ["".join(node.itertext()) for node in root.iter(f"{SVG}text")]
