"""A board's state at any seq (whiteboard/timeline.py): checkpoints, compaction.

The property: for a random sequence of ops by two users (adds, updates,
deletes, clears, undos, redos), the state computed for every seq from the
checkpoints and the log equals replaying the whole log from zero, and equals
the board as a client saw it at that seq (its snapshot then). Checkpoints are
stored as the ops go; a compaction in the middle drops the oldest ops, after
which every seq from the cut on still gives the same state, and earlier seqs
are refused.
"""

import datetime
import json

import pytest
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_services import ANN, BOB, add, commit, delete, rect, simple, update
from whiteboard import protocol as p
from whiteboard import selectors, services, timeline
from whiteboard.models import Board, Checkpoint, Op

pytestmark = pytest.mark.django_db

LIMITS = p.Limits(max_elements=50)


def snapshot(board):
    """The board's live elements as a joining client gets them."""
    page = selectors.snapshot_page(board_id=board.pk, seq=board.seq, after_z=None)
    assert page.next_z is None
    return [e for text in page.frames for e in json.loads(text)["elements"]]


def replay_from_zero(board, upto):
    state = timeline.State()
    state.apply_all(timeline.entries_between(board.pk, 0, upto), upto)
    return state.live()


OP = st.sampled_from(["add", "add", "add", "update", "delete", "clear", "undo", "redo"])


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
@override_settings(WHITEBOARD_CHECKPOINT_OPS=4)
def test_state_at_every_seq_equals_the_log_replayed_and_what_clients_saw(data):
    board = services.board_create(slug=f"t-{Board.objects.count()}", title="T")
    seen = {0: []}
    created = 0
    for step in range(data.draw(st.integers(5, 30), "length")):
        author = data.draw(st.sampled_from([ANN, BOB]), "author")
        kind = data.draw(OP, "op")
        board.refresh_from_db()
        live = [e["id"] for e in snapshot(board)]
        if kind == "add" or (kind in ("update", "delete") and not live):
            created += 1
            x = data.draw(st.integers(-50, 50), "x")
            req = add(rect(f"e{created}", x=x), author=author, limits=LIMITS)
        elif kind == "update":
            target = data.draw(st.sampled_from(live), "target")
            req = update(target, author, x=data.draw(st.integers(-50, 50), "to"))
        elif kind == "delete":
            req = delete(data.draw(st.sampled_from(live), "target"), author=author)
        else:
            req = simple(kind, author)
        commit(board, req, limits=LIMITS)
        board.refresh_from_db()
        seen[board.seq] = snapshot(board)
        timeline.ensure_checkpoint(board.pk)
        if step == 10 and data.draw(st.booleans(), "compact"):
            # Everything so far is older than a moment from now.
            for key in list(seen):
                expected = replay_from_zero(board, key) if key else []
                assert expected == seen[key], key
            timeline.compact(board, timezone.now() + datetime.timedelta(seconds=1))
            board.refresh_from_db()
            for key in [k for k in seen if k < board.history_from]:
                del seen[key]
    board.refresh_from_db()
    for seq, expected in seen.items():
        assert timeline.state_at(board, seq).live() == expected, seq
        if board.history_from == 0:
            assert replay_from_zero(board, seq) == expected, seq
    if board.history_from:
        with pytest.raises(timeline.OutOfHistory):
            timeline.state_at(board, board.history_from - 1)


@override_settings(WHITEBOARD_CHECKPOINT_OPS=3)
def test_checkpoints_bound_the_ops_read_for_any_seq(django_assert_max_num_queries):
    board = services.board_create(slug="cp", title="CP")
    for n in range(10):
        commit(board, add(rect(f"c{n}"), limits=LIMITS), limits=LIMITS)
        assert timeline.ensure_checkpoint(board.pk) in (None, n + 1)
    seqs = list(Checkpoint.objects.filter(board=board).values_list("seq", flat=True))
    assert seqs == [3, 6, 9]
    board.refresh_from_db()
    # The state at 8 starts from the checkpoint at 6: two ops are read.
    state = timeline.state_at(board, 8)
    assert [e["id"] for e in state.live()] == [f"c{n}" for n in range(8)]
    with django_assert_max_num_queries(2):
        timeline.state_at(board, 8)


def test_compaction_keeps_the_board_and_undo_within_what_is_kept():
    board = services.board_create(slug="old", title="Old")
    commit(board, add(rect("a")), add(rect("b")), limits=LIMITS)
    cut = timezone.now() + datetime.timedelta(seconds=1)
    Op.objects.filter(board=board).update(created_at=cut - datetime.timedelta(days=9))
    commit(board, update("b", ANN, x=99), limits=LIMITS)
    Op.objects.filter(board=board, seq=3).update(created_at=cut)
    board.refresh_from_db()
    before = snapshot(board)

    assert timeline.compact(board, cut - datetime.timedelta(days=1)) == 2
    board.refresh_from_db()
    assert board.history_from == 2
    assert snapshot(board) == before
    assert timeline.state_at(board, 2).live() == [
        {**rect("a"), "fill": None, "opacity": 1, "by": "Ann", "v": 1},
        {**rect("b"), "fill": None, "opacity": 1, "by": "Ann", "v": 2},
    ]
    assert timeline.state_at(board, 3).live() == before
    with pytest.raises(timeline.OutOfHistory):
        timeline.state_at(board, 1)

    # A resume from before the cut gets a snapshot; from after it, a replay.
    def resume(since):
        return selectors.replay_from(
            board_id=board.pk, since=since, seq=3, max_replay=99
        )

    assert resume(1) is None
    assert resume(2) == 2
    # Undo reaches the update (kept), not the adds (dropped).
    result = commit(board, simple("undo", ANN), simple("undo", ANN), limits=LIMITS)
    assert [o.error.code if o.error else None for o in result.outcomes] == [
        None,
        "nothing_to_undo",
    ]


def test_state_at_refuses_seqs_the_board_does_not_have():
    board = services.board_create(slug="few", title="Few")
    commit(board, add(rect("a")), limits=LIMITS)
    board.refresh_from_db()
    assert timeline.state_at(board, 0).live() == []
    for bad in (-1, 2):
        with pytest.raises(timeline.OutOfHistory):
            timeline.state_at(board, bad)


def test_the_retention_setting_drops_only_what_is_older_than_it(settings):
    settings.WHITEBOARD_HISTORY_DAYS = 0
    board = services.board_create(slug="kept", title="Kept")
    commit(board, add(rect("a")), add(rect("b")), limits=LIMITS)
    commit(board, add(rect("c")), limits=LIMITS)
    two_days_ago = timezone.now() - datetime.timedelta(days=2)
    Op.objects.filter(board=board, seq__lte=2).update(created_at=two_days_ago)
    assert timeline.compact_old() == 0  # kept for ever by default
    settings.WHITEBOARD_HISTORY_DAYS = 3
    assert timeline.compact_old() == 0
    settings.WHITEBOARD_HISTORY_DAYS = 1
    assert timeline.compact_old() == 2
    board.refresh_from_db()
    assert board.history_from == 2
    assert list(Op.objects.filter(board=board).values_list("seq", flat=True)) == [3]
    assert [e["id"] for e in timeline.state_at(board, 3).live()] == ["a", "b", "c"]
