"""The server stops and comes back: the pages say so, and nothing is lost or doubled."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

MAGENTA, CYAN = "#ff00ff", "#00ffff"
BACK_ONLINE_MS = 40_000  # backoff is capped at ~30 s; the first retries come sooner


def stop_gracefully(server):
    """SIGTERM: daphne says `bye` and closes every socket with 1012, then exits.

    Its exit code is not checked here: tests/test_live_server.py checks it, and
    pages reconnecting while it stops can crash its exit (see the README).
    """
    server.stop()


def assert_no_duplicates(pages, live_data, board, count):
    """`count` elements on every page and in the database, each exactly once."""
    for page in pages:
        ids = [element["id"] for element in page.wait_count(count)]
        assert len(set(ids)) == count, ids
    stored = live_data.elements(board)
    assert len({element["id"] for element in stored}) == len(stored) == count
    assert live_data.element_rows(board) == count
    ops = live_data.ops(board)
    assert [kind for _, kind in ops] == ["add"] * count
    assert len({cid for cid, _ in ops}) == count


def test_a_stroke_drawn_while_the_server_is_down_arrives_after_the_restart(
    open_board, own_server, live_data
):
    board = live_data.create_board()
    alice = open_board(board, server=own_server)
    bob = open_board(board, server=own_server)
    alice.color(MAGENTA)
    alice.drag([(150, 150), (350, 200)])
    bob.wait_pixels(lambda s: s.count(MAGENTA) > 100, "the first stroke")
    alice.wait_confirmed()
    seq = alice.page.evaluate("() => window.whiteboard.seq")

    stop_gracefully(own_server)
    for page in (alice, bob):
        page.wait_status("reconnecting")
        expect(page.status).to_contain_text("Reconnecting")

    # Offline: the stroke shows on Alice's page and waits in her browser's storage.
    alice.color(CYAN)
    alice.drag([(150, 300), (350, 350)])
    alice.wait_pixels(lambda s: s.count(CYAN) > 100, "the offline stroke, locally")
    expect(alice.page.locator("#pending-count")).to_have_text("1")
    assert alice.stored_queue(), "the offline op is kept in localStorage"

    own_server.start()  # the same port and database
    for page in (alice, bob):
        page.wait_status("online", timeout=BACK_ONLINE_MS)
    bob.wait_pixels(lambda s: s.count(CYAN) > 100, "the offline stroke on Bob's page")
    alice.wait_confirmed()
    assert_no_duplicates((alice, bob), live_data, board, 2)
    # Alice resumed from where she was, not from a full snapshot.
    assert f"?since={seq}" in alice.sockets[-1].url


def test_offline_changes_survive_a_page_reload(open_board, own_server, live_data):
    """Close the tab while offline; the next visit sends what was drawn, once."""
    board = live_data.create_board()
    alice = open_board(board, server=own_server)
    bob = open_board(board, server=own_server)

    stop_gracefully(own_server)
    alice.wait_status("reconnecting")
    alice.color(CYAN)
    alice.drag([(150, 300), (350, 350)])
    expect(alice.page.locator("#pending-count")).to_have_text("1")
    context = alice.page.context
    alice.page.close()  # the op lives on only in this browser's localStorage

    own_server.start()
    again = open_board(board, server=own_server, context=context)
    again.wait_confirmed()
    bob.wait_status("online", timeout=BACK_ONLINE_MS)
    bob.wait_pixels(lambda s: s.count(CYAN) > 100, "the stroke from the closed tab")
    assert_no_duplicates((again, bob), live_data, board, 1)
    assert not again.stored_queue(), "the queue is emptied once the server has the op"
