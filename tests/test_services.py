"""whiteboard.services and the Batch engine of whiteboard.changes, without sockets."""

import itertools
import json

import pytest
from django.db import IntegrityError, transaction

from whiteboard import protocol as p
from whiteboard import services
from whiteboard.changes import OpRequest
from whiteboard.identity import Author
from whiteboard.models import Board, Element, History, Op

pytestmark = pytest.mark.django_db

LIMITS = p.Limits(max_elements=5)
ANN = Author(sid="sid-ann", by="Ann", actor="user:1")
BOB = Author(sid="sid-bob", by="Bob", actor="user:2")
VIEWER = Author(sid="sid-vic", by="Vic", actor="conn:sid-vic", role="viewer")
_cids = itertools.count(1)


@pytest.fixture
def board(db):
    return services.board_create(slug="team", title="Team board")


def rect(eid, **fields):
    element = {"id": eid, "kind": "rect", "x": 10, "y": 20, "w": 30, "h": 40}
    return {**element, "color": "#112233", "width": 2, **fields}


def request(frame, author=ANN, *, rate_limited=False, limits=LIMITS):
    """An OpRequest made the way the consumer makes one from a client frame."""
    frame = {"cid": f"cid-{next(_cids):08d}", **frame}
    envelope = p.parse_envelope(json.dumps(frame))
    try:
        message, error = p.validate(envelope, limits), None
    except p.ProtocolError as exc:
        message, error = None, exc
    return OpRequest(envelope.cid, envelope.type, author, message, error, rate_limited)


def add(element, **kw):
    return request({"type": "add", "element": element}, **kw)


def update(eid, author=ANN, **values):
    return request({"type": "update", "id": eid, "set": values}, author)


def delete(*ids, author=ANN):
    return request({"type": "delete", "ids": list(ids)}, author)


def simple(kind, author=ANN, **kw):
    return request({"type": kind}, author, **kw)


def commit(board, *requests, limits=LIMITS):
    return services.ops_commit(
        board_id=board.pk, requests=list(requests), limits=limits
    )


def committed(board, *requests):
    """Commit, insisting that every request was applied; return the op entries."""
    result = commit(board, *requests)
    assert [o.error for o in result.outcomes] == [None] * len(requests)
    return ops_of(result)


def ops_of(result):
    """The op entries of every frame of a commit, in order."""
    return [e for frame in result.frames for e in json.loads(frame.text)["ops"]]


def codes(result):
    return [
        o.error.code if o.error else ("ack" if o.ack else "ok") for o in result.outcomes
    ]


def elements(board):
    rows = Element.objects.filter(board=board, deleted=False).order_by("z")
    return {row.element_id: json.loads(row.body) for row in rows}


def everything(board):
    """Every stored row of the board, to show that a refused op changed nothing."""
    fresh = Board.objects.get(pk=board.pk)
    return (
        (fresh.seq, fresh.live_elements, fresh.changed_at),
        list(Element.objects.filter(board=board).order_by("pk").values()),
        list(Op.objects.filter(board=board).order_by("pk").values()),
    )


# -- seqs, outcomes and the stored log ----------------------------------------------


def test_batch_assigns_consecutive_seqs_around_refused_ops(board):
    result = commit(
        board,
        add(rect("r1")),
        add(rect("r1")),  # exists
        add(rect("r2")),
        update("nope", x=1),  # not_found
        update("r1", x=5),
        simple("undo"),  # reverts the update
    )
    assert codes(result) == ["ok", "exists", "ok", "not_found", "ok", "ok"]
    firsts = [(o.first, o.last) for o in result.outcomes if o.error is None]
    assert firsts == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert (result.first, result.last) == (1, 4)
    ops = ops_of(result)
    assert [e["seq"] for e in ops] == [1, 2, 3, 4]
    stored = list(Op.objects.filter(board=board).order_by("seq"))
    assert [(o.seq, o.last_seq) for o in stored] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert Board.objects.get(pk=board.pk).seq == 4
    assert [e["seq"] for e in committed(board, add(rect("r3")))] == [5]


def test_multi_seq_undo_is_one_op_row_spanning_its_seqs(board):
    committed(board, add(rect("r1")), add(rect("r2")), delete("r1", "r2"))
    undo = simple("undo")
    ops = committed(board, undo)
    assert [(e["seq"], e["cid"]) for e in ops] == [(4, undo.cid), (5, undo.cid)]
    row = Op.objects.get(board=board, cid=undo.cid)
    assert (row.seq, row.last_seq, row.kind, row.history) == (4, 5, "undo", "")
    assert json.loads(row.entries) == ops


def test_duplicate_cid_in_one_batch_is_acked_with_the_seq_it_produced(board):
    first = add(rect("r1"))
    again = add(rect("r1"))
    again.cid = first.cid
    result = commit(board, add(rect("r0")), first, again)
    assert codes(result) == ["ok", "ok", "ack"]
    assert (result.outcomes[2].ack, result.outcomes[2].last) == (True, 2)
    assert [e["cid"] for e in ops_of(result)] == [
        result.outcomes[0].cid,
        first.cid,
    ]


def test_cid_committed_in_an_earlier_batch_is_acked_before_any_other_check(board):
    first = add(rect("r1"))
    commit(board, first)
    Board.objects.filter(pk=board.pk).update(locked=True)
    again = add(rect("r1", width=0), rate_limited=True)  # malformed and over rate
    again.cid = first.cid
    result = commit(board, again)
    assert codes(result) == ["ack"] and result.outcomes[0].last == 1
    assert result.frames == [] and result.first is None


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: add(rect("r1")), "exists"),
        (lambda: add(rect("zz", x=True)), "bad_message"),
        (lambda: update("r1", text="hi"), "bad_message"),
        (lambda: update("gone", x=1), "not_found"),
        (lambda: delete("gone", "nope"), "not_found"),
        (lambda: add(rect("r9"), rate_limited=True), "rate_limited"),
        (lambda: simple("clear", VIEWER), "forbidden"),
        (lambda: simple("redo"), "nothing_to_redo"),
        (lambda: simple("undo", BOB), "nothing_to_undo"),
        (lambda: add(rect("r9")), "board_full"),
    ],
)
def test_refused_op_changes_no_row_at_all(board, make, code):
    carol = Author(sid="sid-carol", by="Carol", actor="user:3")
    committed(board, *[add(rect(f"r{i}")) for i in range(1, 5)])
    committed(board, add(rect("gone"), author=carol), delete("gone", author=carol))
    committed(board, add(rect("r5")))  # five live elements: the board is full
    before = everything(board)
    result = commit(board, make())
    assert codes(result) == [code]
    assert result.frames == [] and result.first is None
    assert everything(board) == before


def test_refused_undo_that_would_overfill_changes_nothing(board):
    committed(board, add(rect("r1")), add(rect("r2")), delete("r1", "r2"))
    committed(board, *[add(rect(f"b{i}"), author=BOB) for i in range(4)])
    before = everything(board)
    assert codes(commit(board, simple("undo"))) == ["board_full"]
    assert everything(board) == before


def test_rate_limited_comes_before_forbidden_and_forbidden_before_fields(board):
    Board.objects.filter(pk=board.pk).update(locked=True)
    result = commit(
        board,
        add(rect("r1", width=0), rate_limited=True),
        add(rect("r1", width=0)),
        update("nope", x=1),
    )
    assert codes(result) == ["rate_limited", "forbidden", "forbidden"]


# -- undo and redo in the engine ----------------------------------------------------


def test_undo_gives_back_another_users_value_then_skips_the_overwritten_update(board):
    committed(board, add(rect("r1", x=10)))
    committed(board, update("r1", x=20))
    committed(board, update("r1", BOB, x=50))
    committed(board, update("r1", x=30))
    assert committed(board, simple("undo"))[0]["set"] == {"x": 50}
    # Ann's first update was overwritten by Bob: skipped, her add is undone.
    assert committed(board, simple("undo"))[0] == {
        "op": "delete",
        "seq": 6,
        "cid": Op.objects.get(board=board, seq=6).cid,
        "sid": "sid-ann",
        "by": "Ann",
        "ids": ["r1"],
    }
    skipped = Op.objects.get(board=board, seq=2)
    assert skipped.history == History.DROPPED


def test_undo_reverts_a_field_again_once_the_other_user_undid_their_change(board):
    committed(board, add(rect("r1", x=10)))
    committed(board, update("r1", x=20))
    committed(board, update("r1", BOB, x=50))
    committed(board, simple("undo", BOB))  # x back to Ann's 20
    assert committed(board, simple("undo"))[0]["set"] == {"x": 10}


def test_redo_does_not_overwrite_a_change_made_after_the_undo(board):
    committed(board, add(rect("r1")))
    committed(board, update("r1", x=1, y=2))
    committed(board, simple("undo"))
    committed(board, update("r1", BOB, x=99))
    assert committed(board, simple("redo"))[0]["set"] == {"y": 2}
    assert (elements(board)["r1"]["x"], elements(board)["r1"]["y"]) == (99, 2)


def test_undo_and_redo_chain_through_several_updates_of_one_field(board):
    committed(board, add(rect("r1", x=0)))
    for x in (1, 2, 3):
        committed(board, update("r1", x=x))
    undone = [committed(board, simple("undo"))[0]["set"] for _ in range(3)]
    assert undone == [{"x": 2}, {"x": 1}, {"x": 0}]
    redone = [committed(board, simple("redo"))[0]["set"] for _ in range(3)]
    assert redone == [{"x": 1}, {"x": 2}, {"x": 3}]
    assert codes(commit(board, simple("redo"))) == ["nothing_to_redo"]
    assert [committed(board, simple("undo"))[0]["set"] for _ in range(3)] == undone


def test_undo_of_delete_in_the_same_batch_as_the_add_and_delete(board):
    ops = committed(board, add(rect("r1")), delete("r1"), simple("undo"))
    assert [e["op"] for e in ops] == ["add", "delete", "add"]
    assert list(elements(board)) == ["r1"]
    row = Element.objects.get(board=board, element_id="r1")
    assert (row.deleted, row.v, row.z) == (False, 3, 1)


def test_undo_of_clear_in_the_same_batch_restores_rows_added_in_it(board):
    ops = committed(board, add(rect("r1")), simple("clear"), simple("undo"))
    assert [e["op"] for e in ops] == ["add", "clear", "add"]
    assert list(elements(board)) == ["r1"]
    assert Board.objects.get(pk=board.pk).live_elements == 1


def test_history_belongs_to_the_actor_not_the_connection(board):
    other_tab = Author(sid="sid-ann-2", by="Ann", actor=ANN.actor)
    committed(board, add(rect("r1")))
    ops = committed(board, simple("undo", other_tab))
    assert (ops[0]["op"], ops[0]["sid"]) == ("delete", "sid-ann-2")


# -- admin-side services ------------------------------------------------------------


def test_board_clear_is_an_op_without_sid_that_nobody_can_undo(
    board, django_user_model
):
    staff = django_user_model.objects.create_user("root", first_name="Ada")
    committed(board, add(rect("r1")))
    Board.objects.filter(pk=board.pk).update(locked=True)
    board.refresh_from_db()
    result = services.board_clear(board=board, user=staff, limits=LIMITS)
    [entry] = ops_of(result)
    assert entry == {
        "op": "clear",
        "seq": 2,
        "cid": entry["cid"],
        "sid": None,
        "by": "Ada",
    }
    assert p.CID_RE.fullmatch(entry["cid"])
    assert elements(board) == {}
    Board.objects.filter(pk=board.pk).update(locked=False)
    # Ann's add was erased by the clear: nothing of hers is left to undo.
    assert codes(commit(board, simple("undo"))) == ["nothing_to_undo"]


def test_board_create_validates_the_slug(db):
    with pytest.raises(Exception, match="lowercase"):
        services.board_create(slug="Not OK", title="x")
    board = services.board_create(slug="ok-1", title="")
    assert (board.title, board.is_public, board.owner) == ("ok-1", True, None)


# -- constraints the database itself enforces ---------------------------------------


def op_row(board, seq, cid, **extra):
    return Op(
        board=board,
        seq=seq,
        last_seq=extra.pop("last_seq", seq),
        cid=cid,
        kind="clear",
        by="x",
        actor="conn:x",
        entries="[]",
        **extra,
    )


@pytest.mark.parametrize(
    "duplicate",
    [
        lambda board: op_row(board, 1, "cid-other-1"),  # same seq
        lambda board: op_row(board, 2, "cid-first-1"),  # same cid
        lambda board: op_row(board, 3, "cid-other-2", last_seq=2),  # last < seq
    ],
    ids=["seq", "cid", "seq-range"],
)
def test_database_refuses_a_second_op_with_the_same_seq_or_cid(board, duplicate):
    op_row(board, 1, "cid-first-1").save()
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate(board).save()
    other = services.board_create(slug="other", title="Other")
    op_row(other, 1, "cid-first-1").save()  # unique per board only


def test_database_refuses_a_second_element_with_the_same_id(board):
    fields = {"kind": "rect", "z": 1, "v": 1, "body": "{}"}
    Element.objects.create(board=board, element_id="e1", **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Element.objects.create(board=board, element_id="e1", **fields, deleted=True)
    other = services.board_create(slug="other", title="Other")
    Element.objects.create(board=other, element_id="e1", **fields)


def test_group_commit_keeps_each_boards_batch_and_order(board):
    other = services.board_create(slug="other", title="Other board")
    results = services.ops_commit_boards(
        batches=[
            (other.pk, [add(rect("o1")), add(rect("o2"))], LIMITS),
            (board.pk, [add(rect("b1"))], LIMITS),
        ]
    )
    assert [(r.first, r.last) for r in results] == [(1, 2), (1, 1)]
    assert sorted(Element.objects.values_list("element_id", flat=True)) == [
        "b1",
        "o1",
        "o2",
    ]


def test_group_commit_failure_of_one_board_spares_the_others(board):
    missing_board_id = Board.objects.order_by("-pk").first().pk + 1000
    results = services.ops_commit_boards(
        batches=[
            (missing_board_id, [add(rect("lost"))], LIMITS),
            (board.pk, [add(rect("kept"))], LIMITS),
        ]
    )
    assert isinstance(results[0], Board.DoesNotExist)
    assert results[1].first == 1
    assert list(Element.objects.values_list("element_id", flat=True)) == ["kept"]
    board.refresh_from_db()
    assert board.seq == 1
