"""whiteboard.commits: every board's batches committed together, set-based.

The set-based way must be the per-board way (`ops_commit`) in everything a
client or the log can tell, with a number of statements that does not grow
with the number of boards.
"""

import json
import random

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from whiteboard import commits, services
from whiteboard.models import Board, Element, History, Op
from whiteboard.protocol import Limits

from .test_services import ANN, BOB, add, codes, delete, ops_of, rect, simple, update

pytestmark = pytest.mark.django_db

LIMITS = Limits(max_elements=8)


def boards(count, prefix="b"):
    return [
        services.board_create(slug=f"{prefix}{i}", title=f"B{i}") for i in range(count)
    ]


def stored(board):
    """What a client can learn of a board: its seq and counts, its elements, its log."""
    fresh = Board.objects.get(pk=board.pk)
    rows = Element.objects.filter(board=board).order_by("element_id")
    log = Op.objects.filter(board=board).order_by("seq")
    return (
        (fresh.seq, fresh.live_elements, fresh.live_bytes),
        [(e.element_id, e.z, e.v, e.deleted, e.body, e.field_v) for e in rows],
        [(o.seq, o.last_seq, o.cid, o.kind, o.entries, o.undo, o.history) for o in log],
    )


def outcome_view(result):
    return codes(result), (result.first, result.last), ops_of(result)


def random_batch(rng, eids, author):
    """Adds, updates and deletes, some refused (exists, not_found, board_full)."""
    batch = []
    for _ in range(rng.randint(1, 6)):
        eid = rng.choice(eids)
        kind = rng.choice(["add", "add", "update", "delete"])
        if kind == "add":
            batch.append(add(rect(eid, x=rng.randint(0, 99)), author=author))
        elif kind == "update":
            batch.append(update(eid, author, x=rng.randint(0, 99)))
        else:
            batch.append(delete(eid, author=author))
    return batch


def test_committed_together_equals_committed_board_by_board():
    """Random rounds of batches on six boards: the same outcomes, frames and
    stored rows as the per-board way, round after round."""
    rng = random.Random(1729)
    together, alone = boards(6, "t"), boards(6, "a")
    eids = [f"e{i}" for i in range(16)]
    seen = set()
    for _ in range(12):
        plan = [random_batch(rng, eids, rng.choice([ANN, BOB])) for _ in together]
        results = services.ops_commit_boards(
            batches=[
                (b.pk, reqs, LIMITS) for b, reqs in zip(together, plan, strict=True)
            ]
        )
        for board, reqs, result in zip(alone, plan, results, strict=True):
            # The same requests (cids included) again, on the twin board.
            expected = services.ops_commit(
                board_id=board.pk, requests=reqs, limits=LIMITS
            )
            assert outcome_view(result) == outcome_view(expected)
            seen.update(codes(result))
    for a, t in zip(alone, together, strict=True):
        assert stored(t) == stored(a)
    assert {"ok", "exists", "not_found", "board_full"} <= seen  # every rule met


def test_statements_do_not_grow_with_the_number_of_boards():
    def statements(count, prefix):
        targets = boards(count, prefix)
        for b in targets:  # an element to update and one to delete on each
            services.ops_commit(
                board_id=b.pk, requests=[add(rect("u")), add(rect("d"))], limits=LIMITS
            )
        batches = [
            (
                b.pk,
                [add(rect("n")), update("u", x=7), delete("d"), add(rect("u"))],
                LIMITS,
            )
            for b in targets
        ]
        with CaptureQueriesContext(connection) as queries:
            results = services.ops_commit_boards(batches=batches)
        assert all(codes(r) == ["ok", "ok", "ok", "exists"] for r in results)
        return len(queries)

    one, forty = statements(1, "one"), statements(40, "forty")
    assert forty == one
    assert one <= 11  # the refused add: its batch is read again (commit_together)


def test_adds_are_written_without_reading_elements_or_cids():
    """The common case, adds on many boards: the board rows are locked and the
    redo lists looked up; everything else is a write."""
    targets = boards(30)
    batches = [(b.pk, [add(rect("a")), add(rect("b"))], LIMITS) for b in targets]
    with CaptureQueriesContext(connection) as queries:
        results = services.ops_commit_boards(batches=batches)
    assert all(codes(r) == ["ok", "ok"] for r in results)
    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT")]
    assert len(reads) == 2
    assert "whiteboard_board" in reads[0] and "history" in reads[1]
    assert Element.objects.count() == 60


def test_a_resent_update_is_acked_not_applied_again():
    board = boards(1)[0]
    services.ops_commit(board_id=board.pk, requests=[add(rect("r"))], limits=LIMITS)
    move = update("r", x=50)
    services.ops_commit_boards(batches=[(board.pk, [move], LIMITS)])
    services.ops_commit_boards(batches=[(board.pk, [update("r", x=60)], LIMITS)])
    before = stored(board)
    (result,) = services.ops_commit_boards(batches=[(board.pk, [move], LIMITS)])
    assert codes(result) == ["ack"]
    assert result.outcomes[0].last == 2
    assert stored(board) == before  # x stays 60
    assert json.loads(Element.objects.get(element_id="r").body)["x"] == 60


def test_an_add_of_a_used_id_is_refused_as_exists_whatever_else_fails():
    """Write-first assumes a new id; a refusal for another reason (the board
    is full) must still name the rule the protocol checks first."""
    board = boards(1)[0]
    full = Limits(max_elements=1)
    services.ops_commit(board_id=board.pk, requests=[add(rect("r"))], limits=full)
    services.ops_commit(board_id=board.pk, requests=[delete("r")], limits=full)
    services.ops_commit(board_id=board.pk, requests=[add(rect("s"))], limits=full)
    (result,) = services.ops_commit_boards(
        batches=[(board.pk, [add(rect("r")), add(rect("t"))], full)]
    )
    assert codes(result) == ["exists", "board_full"]


def test_a_commit_is_acked_and_not_applied_twice():
    board, other = boards(2)
    first = add(rect("r1"))
    services.ops_commit_boards(batches=[(board.pk, [first], LIMITS)])
    results = services.ops_commit_boards(
        batches=[
            (board.pk, [first, add(rect("r2"))], LIMITS),
            (other.pk, [first], LIMITS),
        ]
    )
    assert codes(results[0]) == ["ack", "ok"]
    assert results[0].outcomes[0].last == 1
    assert codes(results[1]) == ["ok"]  # cids are per board


def test_a_new_op_empties_its_authors_redo_list_on_that_board_only():
    board, other = boards(2)
    for b in (board, other):
        services.ops_commit(
            board_id=b.pk, requests=[add(rect("r1")), simple("undo")], limits=LIMITS
        )
    services.ops_commit_boards(batches=[(board.pk, [add(rect("r2"))], LIMITS)])
    histories = dict(
        Op.objects.filter(kind="add", seq=1).values_list("board", "history")
    )
    assert histories == {board.pk: History.DROPPED, other.pk: History.UNDONE}
    result = services.ops_commit(
        board_id=board.pk, requests=[simple("redo")], limits=LIMITS
    )
    assert codes(result) == ["nothing_to_redo"]


def test_one_boards_failure_spares_the_others(monkeypatch):
    """A batch that raises while applied (a bug) fails alone; nothing of it is
    written, and the other boards' batches commit."""
    good, bad = boards(2)
    real = commits.Batch.apply_update

    def broken(batch, req):
        if batch.board.pk == bad.pk:
            raise RuntimeError("a bug")
        return real(batch, req)

    services.ops_commit(board_id=bad.pk, requests=[add(rect("x"))], limits=LIMITS)
    services.ops_commit(board_id=good.pk, requests=[add(rect("x"))], limits=LIMITS)
    before = stored(bad)
    monkeypatch.setattr(commits.Batch, "apply_update", broken)
    results = services.ops_commit_boards(
        batches=[
            (bad.pk, [add(rect("y")), update("x", x=1)], LIMITS),
            (good.pk, [add(rect("y")), update("x", x=1)], LIMITS),
        ]
    )
    assert isinstance(results[0], RuntimeError)
    assert codes(results[1]) == ["ok", "ok"]
    assert stored(bad) == before
    assert Board.objects.get(pk=good.pk).seq == 3


def test_a_failed_set_based_write_is_committed_again_board_by_board(monkeypatch):
    """Should the shared writes hit a constraint, the transaction is rolled
    back and each board commits on its own: nothing lost, nothing doubled."""
    first, second = boards(2)
    calls = []
    real = commits.write

    def failing(applied):
        calls.append(len(applied))
        real(applied)
        raise IntegrityError("simulated constraint violation")

    monkeypatch.setattr(commits, "write", failing)
    results = services.ops_commit_boards(
        batches=[
            (first.pk, [add(rect("a"))], LIMITS),
            (second.pk, [add(rect("b"))], LIMITS),
        ]
    )
    assert calls == [2]
    assert [codes(r) for r in results] == [["ok"], ["ok"]]
    assert [Board.objects.get(pk=b.pk).seq for b in (first, second)] == [1, 1]
    assert Op.objects.count() == 2
    bodies = [json.loads(e.body)["id"] for e in Element.objects.order_by("element_id")]
    assert bodies == ["a", "b"]


def test_a_missing_board_fails_alone():
    board = boards(1)[0]
    results = services.ops_commit_boards(
        batches=[
            (board.pk + 1000, [add(rect("lost"))], LIMITS),
            (board.pk, [add(rect("k"))], LIMITS),
        ]
    )
    assert isinstance(results[0], Board.DoesNotExist)
    assert codes(results[1]) == ["ok"]
