"""The bounds of one commit: the size of the frames it produces (PROTOCOL.md,
"Frame size") and the work an undo or redo may do."""

import json

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from whiteboard import broadcast, commits, services
from whiteboard import protocol as p
from whiteboard.identity import Author
from whiteboard.models import Op
from whiteboard.protocol.frames import FRAME_BUDGET

from .test_services import add, codes, commit, delete, elements, ops_of, rect, simple

pytestmark = pytest.mark.django_db

LIMITS = p.Limits()


@pytest.fixture
def board(db):
    return services.board_create(slug="team", title="Team board")


def stroke(eid, points=5000):
    pts = [[1000.125 + i, -2000.375 - i] for i in range(points)]
    return {"id": eid, "kind": "stroke", "x": 0, "y": 0, "points": pts} | {
        "color": "#112233",
        "width": 3,
    }


def big_clear_undone(board):
    """15 strokes of 5,000 points, cleared, then the clear undone."""
    for i in range(15):
        commit(board, add(stroke(f"s{i}"), limits=LIMITS), limits=LIMITS)
    commit(board, simple("clear"), limits=LIMITS)
    return commit(board, simple("undo"), limits=LIMITS)


def test_undo_of_a_big_clear_comes_out_as_several_frames_of_consecutive_seqs(board):
    result = big_clear_undone(board)
    assert [o.error for o in result.outcomes] == [None]
    assert (result.first, result.last) == (17, 31)
    assert len(result.frames) > 1
    entry_max = max(len(e) for f in result.frames for e in entry_texts(f.text))
    seqs = []
    for frame in result.frames:
        assert len(frame.text.encode()) <= FRAME_BUDGET + entry_max + 100
        ops = json.loads(frame.text)["ops"]
        assert [e["seq"] for e in ops] == list(range(frame.first, frame.last + 1))
        seqs.extend(e["seq"] for e in ops)
    assert seqs == list(range(17, 32))
    assert [e["element"]["id"] for e in ops_of(result)] == [f"s{i}" for i in range(15)]
    assert sum(len(f.text) for f in result.frames) > 1024 * 1024  # was one frame


def entry_texts(text):
    return [json.dumps(e) for e in json.loads(text)["ops"]]


def test_a_batch_of_small_ops_stays_one_frame(board):
    result = commit(board, *[add(stroke(f"s{i}", 2)) for i in range(3)])
    assert [(f.first, f.last) for f in result.frames] == [(1, 3)]


class RecordingLayer:
    def __init__(self):
        self.sent = []

    async def group_send(self, group, event):
        self.sent.append((group, event))


class BrokenLayer:
    async def group_send(self, group, event):
        raise ConnectionError("Redis is down")


def test_publish_ops_sends_one_event_per_frame(board, monkeypatch):
    layer = RecordingLayer()
    sent = layer.sent
    monkeypatch.setattr(broadcast, "get_channel_layer", lambda: layer)
    result = big_clear_undone(board)
    broadcast.publish_ops("team", result.frames)
    assert [(e["first"], e["last"]) for _, e in sent] == [
        (f.first, f.last) for f in result.frames
    ]
    assert {g for g, _ in sent} == {"board.team"}
    assert [e["text"] for _, e in sent] == [f.text for f in result.frames]
    assert {e["type"] for _, e in sent} == {broadcast.OPS}


def test_admin_clear_survives_a_channel_layer_that_fails(
    board, monkeypatch, django_user_model, django_capture_on_commit_callbacks
):
    staff = django_user_model.objects.create_user("root")
    commit(board, add(stroke("s1", 2)))
    monkeypatch.setattr(broadcast, "get_channel_layer", BrokenLayer)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        result = services.board_clear(board=board, user=staff, limits=LIMITS)
    assert len(callbacks) == 1
    assert [(f.first, f.last) for f in result.frames] == [(2, 2)]
    board.refresh_from_db()
    assert (board.seq, board.live_elements) == (2, 0)


# -- undo and redo do bounded work ------------------------------------------------

BOB = Author(sid="sid-bob", by="Bob", actor="user:2")


def long_history(board):
    """Ann adds and deletes x, then adds 1,000 elements that Bob clears: her
    undo passes over 1,000 entries with nothing left to revert to reach x."""
    commit(board, add(rect("x")), delete("x"), limits=LIMITS)
    adds = [add(rect(f"r{i}"), limits=LIMITS) for i in range(1000)]
    commit(board, *adds, limits=LIMITS)
    commit(board, simple("clear", BOB), limits=LIMITS)


def history_of(board, actor="user:1"):
    rows = Op.objects.filter(board=board, actor=actor).exclude(history="")
    return dict(rows.values_list("history").annotate(n=Count("pk")))


def test_an_undo_past_1000_skipped_entries_takes_a_bounded_number_of_queries(board):
    long_history(board)
    with CaptureQueriesContext(connection) as queries:
        result = commit(board, simple("undo"), limits=LIMITS)
    assert codes(result) == ["ok"]
    assert [e["element"]["id"] for e in ops_of(result)] == ["x"]
    assert len(queries) <= 30, [q["sql"][:80] for q in queries]
    assert history_of(board) == {"dropped": 1000, "undone": 1, "done": 1}


def test_skipped_entries_are_dropped_even_when_the_undo_then_fails(board):
    long_history(board)
    full = p.Limits(max_elements=2)
    commit(board, add(rect("b1"), author=BOB), add(rect("b2"), author=BOB))
    result = commit(board, simple("undo"), limits=full)
    assert codes(result) == ["board_full"]
    assert history_of(board) == {"dropped": 1000, "done": 2}
    assert elements(board).keys() == {"b1", "b2"}
    with CaptureQueriesContext(connection) as queries:
        assert codes(commit(board, simple("undo"), limits=LIMITS)) == ["ok"]
    assert len(queries) <= 15
    assert "x" in elements(board)


def test_an_undo_searches_at_most_the_scan_limit_then_says_so(board, settings):
    settings.WHITEBOARD_UNDO_SCAN = 300
    long_history(board)
    for dropped in (300, 600, 900):
        result = commit(board, simple("undo"), limits=LIMITS)
        assert codes(result) == ["nothing_to_undo"]
        message = result.outcomes[0].error.message
        assert "too long to search at once" in message
        assert "so undo again to search further back" in message
        assert history_of(board)["dropped"] == dropped
    assert codes(commit(board, simple("undo"), limits=LIMITS)) == ["ok"]
    assert "x" in elements(board)
    assert codes(commit(board, simple("undo"), limits=LIMITS)) == ["ok"]  # x's add
    result = commit(board, simple("undo"), limits=LIMITS)
    assert codes(result) == ["nothing_to_undo"]
    assert result.outcomes[0].error.message == (
        "There is nothing of yours left to undo on this board."
    )


def test_a_redo_scans_in_bounded_chunks_too(board, settings):
    settings.WHITEBOARD_UNDO_SCAN = 250
    commit(board, *[add(rect(f"r{i}")) for i in range(2)])
    for _ in range(2):
        commit(board, simple("undo"))
    assert codes(commit(board, simple("redo"))) == ["ok"]
    assert list(elements(board)) == ["r0"]


@pytest.mark.django_db(transaction=True)
def test_a_batch_with_an_undo_commits_outside_the_shared_transaction(
    board, monkeypatch
):
    other = services.board_create(slug="other", title="Other")
    third = services.board_create(slug="third", title="Third")
    commit(board, add(rect("a")))
    seen = {}
    real, real_together = commits.ops_commit, commits.commit_together

    def spy(*, board_id, requests, limits):
        seen[board_id] = connection.in_atomic_block
        return real(board_id=board_id, requests=requests, limits=limits)

    def together_spy(batches):
        seen.update((board_id, connection.in_atomic_block) for board_id, *_ in batches)
        return real_together(batches)

    monkeypatch.setattr(commits, "ops_commit", spy)
    monkeypatch.setattr(commits, "commit_together", together_spy)
    results = services.ops_commit_boards(
        batches=[
            (other.pk, [add(rect("o1"))], LIMITS),
            (board.pk, [add(rect("b")), simple("undo")], LIMITS),
            # A clear goes board by board, but in the shared transaction.
            (third.pk, [add(rect("t1")), simple("clear")], LIMITS),
        ]
    )
    assert seen == {other.pk: True, board.pk: False, third.pk: True}
    assert [codes(r) for r in results] == [["ok"], ["ok", "ok"], ["ok", "ok"]]
    assert services.needs_own_transaction([simple("redo")])
    assert not services.needs_own_transaction([add(rect("z"))])
