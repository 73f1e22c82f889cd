"""selectors.snapshot_page and replay_page: a board's state read in bounded pages."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from whiteboard import selectors, services
from whiteboard.models import Element, Op
from whiteboard.protocol import frames
from whiteboard.protocol.frames import FRAME_BUDGET, element_text, encode

from .test_commit_bounds import LIMITS, big_clear_undone
from .test_services import add, commit, delete, rect

pytestmark = pytest.mark.django_db

MiB = 1024 * 1024


@pytest.fixture
def board(db):
    return services.board_create(slug="team", title="Team board")


def fill(board, count, size):
    """`count` live text elements of about `size` bytes each, straight into rows."""
    rows = []
    for i in range(count):
        body = {"id": f"e{i}", "kind": "text", "x": i, "y": 0, "size": 12}
        body |= {"text": f"{i:05d}é" + "x" * (size - 100), "color": "#000000"}
        rows.append(
            Element(
                board=board,
                element_id=f"e{i}",
                kind="text",
                z=i + 1,
                v=i + 1,
                body=encode(body),
            )
        )
    Element.objects.bulk_create(rows)
    board.seq = count
    board.save(update_fields=["seq"])
    return rows


def whole_snapshot(board, seq):
    """The snapshot as it was built before pages: every live element at once."""
    live = Element.objects.live().filter(board=board).order_by("z")
    texts = [element_text(body, v) for body, v in live.values_list("body", "v")]
    return list(frames.snapshot_frames(seq, texts))


def reads(queries):
    """The statements that read rows: a page on PostgreSQL also opens and
    closes a savepoint (its read transaction, nested in the test's)."""
    return [q for q in queries if "SAVEPOINT" not in q["sql"]]


def read_pages(board, seq, max_bytes):
    pages, after_z = [], None
    while True:
        with CaptureQueriesContext(connection) as queries:
            page = selectors.snapshot_page(
                board_id=board.pk, seq=seq, after_z=after_z, max_bytes=max_bytes
            )
        assert len(reads(queries)) == 1  # one streamed query per page
        pages.append(page)
        if page.next_z is None:
            return pages
        after_z = page.next_z


def elements_of(texts):
    return [e for text in texts for e in json.loads(text)["elements"]]


def test_a_big_board_is_read_in_pages_of_about_max_bytes(board):
    rows = fill(board, 400, 20_000)  # 8 MB
    biggest = max(len(r.body.encode()) for r in rows)
    pages = read_pages(board, 400, MiB)
    assert len(pages) == 8
    for page in pages:
        held = sum(len(e.encode()) for f in page.frames for e in element_texts(f))
        assert held <= MiB + biggest + 100
        assert all(len(f.encode()) <= FRAME_BUDGET + biggest + 100 for f in page.frames)
    texts = [f for page in pages for f in page.frames]
    # Pages end at whole frames: the client gets the frames of one whole read.
    assert texts == whole_snapshot(board, 400)
    decoded = [json.loads(f) for f in texts]
    assert {f["seq"] for f in decoded} == {400}
    assert [f["more"] for f in decoded] == [True] * (len(texts) - 1) + [False]


def element_texts(frame):
    return [encode(e) for e in json.loads(frame)["elements"]]


def test_pages_end_at_the_row_limit_on_a_board_of_small_elements(board, monkeypatch):
    monkeypatch.setattr(selectors, "PAGE_ROWS", 7)
    fill(board, 20, 150)
    pages = read_pages(board, 20, MiB)
    assert [len(elements_of(p.frames)) for p in pages] == [7, 7, 6]
    assert [e["id"] for p in pages for e in elements_of(p.frames)] == [
        f"e{i}" for i in range(20)
    ]


def test_an_empty_board_is_one_frame_with_no_elements(board):
    page = selectors.snapshot_page(board_id=board.pk, seq=0, after_z=None)
    assert page.next_z is None
    assert [json.loads(f) for f in page.frames] == [
        {"type": "snapshot", "seq": 0, "elements": [], "more": False}
    ]


def test_snapshot_pages_hold_live_elements_only_in_stacking_order(board):
    commit(board, add(rect("a")), add(rect("b")), add(rect("c")), delete("b"))
    page = selectors.snapshot_page(board_id=board.pk, seq=4, after_z=None)
    assert [e["id"] for e in elements_of(page.frames)] == ["a", "c"]


# -- replays ------------------------------------------------------------------------


def read_replay(board, after, upto, max_bytes=MiB):
    got = []
    while after is not None:
        with CaptureQueriesContext(connection) as queries:
            page = selectors.replay_page(
                board_id=board.pk, after=after, upto=upto, max_bytes=max_bytes
            )
        assert len(reads(queries)) == 1  # one streamed query per page
        got.append(page)
        after = page.next_after
    return got


def test_a_replay_splits_a_big_undo_into_frames_of_consecutive_seqs(board):
    big_clear_undone(board)
    pages = read_replay(board, 0, 31, max_bytes=512 * 1024)
    assert len(pages) > 1
    frames_ = [f for page in pages for f in page.frames]
    assert len(frames_) > 3
    seqs = []
    for frame in frames_:
        assert len(frame.text.encode()) <= FRAME_BUDGET + 120_000
        ops = json.loads(frame.text)["ops"]
        assert [e["seq"] for e in ops] == list(range(frame.first, frame.last + 1))
        seqs.extend(e["seq"] for e in ops)
    assert seqs == list(range(1, 32))
    stored = [e for op in Op.objects.order_by("seq") for e in json.loads(op.entries)]
    assert [e for f in frames_ for e in json.loads(f.text)["ops"]] == stored


def test_a_replay_from_inside_a_multi_seq_op_gives_only_its_later_entries(board):
    big_clear_undone(board)  # the undo is seqs 17..31
    [page] = read_replay(board, 20, 25)
    ops = [e for f in page.frames for e in json.loads(f.text)["ops"]]
    assert [e["seq"] for e in ops] == [21, 22, 23, 24, 25]
    assert page.next_after is None


def test_replay_pages_step_through_the_log_by_seq(board, monkeypatch):
    monkeypatch.setattr(selectors, "PAGE_ROWS", 2)
    commit(board, *[add(rect(f"r{i}")) for i in range(5)])
    pages = read_replay(board, 0, 5)
    assert [p.next_after for p in pages] == [2, 4, None]
    assert [(f.first, f.last) for p in pages for f in p.frames] == [
        (1, 2),
        (3, 4),
        (5, 5),
    ]


def test_replay_from_needs_every_op_since_and_reads_no_entries(board):
    commit(board, *[add(rect(f"r{i}")) for i in range(5)])
    replay = dict(board_id=board.pk, seq=5, max_replay=3)
    with CaptureQueriesContext(connection) as queries:
        assert selectors.replay_from(since=2, **replay) == 2
    assert len(queries) == 1 and "entries" not in queries[0]["sql"]
    assert selectors.replay_from(since=5, **replay) == 5
    assert selectors.replay_from(since=1, **replay) is None  # too old
    assert selectors.replay_from(since=6, **replay) is None  # ahead
    assert selectors.replay_from(since=None, **replay) is None
    Op.objects.filter(board=board, seq=4).delete()
    assert selectors.replay_from(since=2, **replay) is None  # the log has a gap


def test_board_join_returns_the_welcome_and_where_to_replay_from(board):
    commit(board, add(rect("a")), add(rect("b")))
    admission = services.board_admit(slug="team", user=None, session={}, sid="s1")
    joined = services.board_join(
        admission=admission,
        channel_name="chan",
        server="srv",
        since=1,
        limits=LIMITS,
        max_replay=100,
    )
    welcome = json.loads(joined.welcome)
    assert (welcome["type"], welcome["seq"], joined.seq) == ("welcome", 2, 2)
    assert (
        welcome["board"]
        == joined.board
        == {
            "slug": "team",
            "title": "Team board",
            "role": "editor",
            "locked": False,
            "epoch": board.epoch,
        }
    )
    assert (joined.users, joined.replay_after) == ([], 1)
