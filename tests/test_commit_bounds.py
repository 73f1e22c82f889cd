"""The bounds of one commit: the size of the frames it produces (PROTOCOL.md,
"Frame size") and the work an undo or redo may do."""

import json

import pytest

from whiteboard import broadcast, services
from whiteboard import protocol as p
from whiteboard.protocol.frames import FRAME_BUDGET

from .test_services import add, commit, ops_of, simple

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
