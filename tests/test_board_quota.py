"""The per-board storage quota: Board.live_bytes, kept by the Batch engine."""

import importlib

import pytest
from django.apps import apps

from whiteboard import protocol as p
from whiteboard import services
from whiteboard.identity import Author
from whiteboard.models import Board, Element

from .test_commit_bounds import stroke
from .test_services import (
    add,
    codes,
    commit,
    committed,
    delete,
    everything,
    rect,
    simple,
    update,
)

pytestmark = pytest.mark.django_db

BOB = Author(sid="sid-bob", by="Bob", actor="user:2")


@pytest.fixture
def board(db):
    return services.board_create(slug="team", title="Team board")


def text(eid, chars, **fields):
    element = {"id": eid, "kind": "text", "x": 0, "y": 0, "text": "é" * chars}
    return {**element, "size": 12, "color": "#000000", "width": 1, **fields}


def live_bytes(board):
    return Board.objects.get(pk=board.pk).live_bytes


def counted(board):
    """The live bytes as the quota counts them, from the rows themselves."""
    live = Element.objects.filter(board=board, deleted=False)
    return sum(len(body.encode()) for body in live.values_list("body", flat=True))


def test_live_bytes_follow_every_kind_of_op(board):
    steps = [
        lambda: [add(text("a", 100)), add(text("b", 50)), add(rect("c"))],
        lambda: [update("a", text="é" * 300)],
        lambda: [delete("b")],
        lambda: [simple("undo")],  # b back
        lambda: [simple("undo")],  # a's text back to 100
        lambda: [simple("redo")],
        lambda: [simple("clear")],
        lambda: [simple("undo")],
        lambda: [simple("redo")],
        lambda: [simple("undo")],
    ]
    seen = []
    for step in steps:
        committed(board, *step())
        assert live_bytes(board) == counted(board)
        seen.append(live_bytes(board))
    assert seen[0] > 200 and seen[6] == 0 and seen[7] == seen[5] > seen[0]


def quota(max_board_bytes):
    return p.Limits(max_elements=50, max_board_bytes=max_board_bytes)


def test_an_add_past_the_quota_is_refused_and_says_which_limit(board):
    limits = quota(1024 * 1024)
    for i in range(10):  # strokes of about 100 kB each
        commit(board, add(stroke(f"s{i}"), limits=limits), limits=limits)
    held = live_bytes(board)
    assert 900_000 < held <= 1024 * 1024
    before = everything(board)
    result = commit(board, add(stroke("s99"), limits=limits), limits=limits)
    assert codes(result) == ["board_full"]
    assert result.outcomes[0].error.message == (
        f"This board holds {held / 1024 / 1024:.1f} MB of drawings; the limit is "
        "1.0 MB. Delete something first."
    )
    assert everything(board) == before
    small = commit(board, add(text("t8", 10), limits=limits), limits=limits)
    assert codes(small) == ["ok"]


def test_an_update_that_grows_past_the_quota_is_refused(board):
    limits = quota(3_000)
    commit(board, add(text("a", 100)), limits=limits)
    before = everything(board)
    result = commit(board, update("a", text="é" * 1999), limits=limits)
    assert codes(result) == ["board_full"]
    assert everything(board) == before
    assert codes(commit(board, update("a", text="x"), limits=limits)) == ["ok"]


def test_an_undo_of_a_clear_past_the_quota_is_refused(board):
    limits = quota(20_000)
    commit(board, add(text("a", 1999)), add(text("b", 1999)), limits=limits)
    commit(board, simple("clear"), limits=limits)
    commit(
        board, *[add(text(f"c{i}", 1999), author=BOB) for i in range(3)], limits=limits
    )
    before = everything(board)
    result = commit(board, simple("undo"), limits=limits)
    assert codes(result) == ["board_full"]
    assert "drawings" in result.outcomes[0].error.message
    assert everything(board) == before


def test_the_element_count_refusal_keeps_its_own_message(board):
    limits = p.Limits(max_elements=1)
    commit(board, add(rect("a")), limits=limits)
    result = commit(board, add(rect("b")), limits=limits)
    assert "elements; the limit is 1" in result.outcomes[0].error.message


def test_the_migration_counts_the_live_bytes_of_existing_boards(board):
    committed(board, add(text("a", 100)), add(text("b", 20)), delete("b"))
    other = services.board_create(slug="other", title="Empty")
    expected = counted(board)
    Board.objects.update(live_bytes=123)
    migration = importlib.import_module("whiteboard.migrations.0003_board_live_bytes")
    migration.fill_live_bytes(apps, None)
    assert live_bytes(board) == expected
    assert live_bytes(other) == 0
