"""Restore: a board put back as it was at a seq, as ordinary, undoable ops."""

import json

import pytest
from django.test import override_settings

from tests.test_services import (
    ANN,
    BOB,
    add,
    commit,
    delete,
    ops_of,
    rect,
    simple,
    update,
)
from tests.test_timeline import snapshot
from whiteboard import protocol as p
from whiteboard import services, timeline
from whiteboard.models import Membership, Op

pytestmark = pytest.mark.django_db

LIMITS = p.Limits(max_elements=20)


@pytest.fixture
def board(owner):
    return services.board_create(slug="team", title="Team", owner=owner)


def restore(board, owner, seq, limits=LIMITS):
    return services.board_restore(board=board, user=owner, seq=seq, limits=limits)


def undo_as(owner):
    """Undo as the restoring owner: the restore is in her history."""
    from whiteboard.identity import Author

    author = Author(sid="sid-olga", by="olga", actor=f"user:{owner.pk}")
    return simple("undo", author), simple("redo", author)


def test_restore_puts_the_board_back_as_ordinary_ops(board, owner):
    commit(board, add(rect("a")), add(rect("b")), limits=LIMITS)  # seqs 1, 2
    board.refresh_from_db()
    at_two = snapshot(board)
    commit(board, update("a", ANN, x=70), delete("b"), add(rect("c")), limits=LIMITS)
    result = restore(board, owner, 2)
    assert result.outcomes[0].error is None
    entries = ops_of(result)
    # What was not there goes, what went comes back in its place, what
    # changed gets its old values: three entries with consecutive seqs, sid
    # null, the owner's name as `by`, one cid.
    assert [(e["op"], e["seq"]) for e in entries] == [
        ("delete", 6),
        ("add", 7),
        ("update", 8),
    ]
    assert entries[0]["ids"] == ["c"]
    assert entries[1]["element"]["id"] == "b"
    assert entries[2] == {**entries[2], "id": "a", "set": {"x": 10}}
    assert {e["sid"] for e in entries} == {None}
    assert {e["by"] for e in entries} == {"olga"}
    assert len({e["cid"] for e in entries}) == 1
    board.refresh_from_db()
    assert strip_v(snapshot(board)) == strip_v(at_two)
    # One entry in the log, of kind restore.
    assert Op.objects.filter(board=board, kind="restore").count() == 1
    assert timeline.state_at(board, board.seq).live() == snapshot(board)


def strip_v(elements):
    return [{k: v for k, v in e.items() if k != "v"} for e in elements]


def test_undo_of_a_restore_brings_back_what_was_there_and_redo_restores_again(
    board, owner
):
    commit(board, add(rect("a")), add(rect("b")), limits=LIMITS)
    commit(board, update("a", ANN, x=70), delete("b"), add(rect("c")), limits=LIMITS)
    board.refresh_from_db()
    before = strip_v(snapshot(board))
    restore(board, owner, 2)
    board.refresh_from_db()
    restored = strip_v(snapshot(board))
    undo, redo = undo_as(owner)
    for _ in range(2):  # undo, redo, undo, redo: each time the same boards
        result = commit(board, undo, limits=LIMITS)
        assert result.outcomes[0].error is None
        board.refresh_from_db()
        assert strip_v(snapshot(board)) == before
        result = commit(board, redo, limits=LIMITS)
        assert result.outcomes[0].error is None
        board.refresh_from_db()
        assert strip_v(snapshot(board)) == restored
        undo, redo = undo_as(owner)


def test_restoring_to_the_seq_before_a_restore_brings_back_what_was_there(board, owner):
    commit(board, add(rect("a")), limits=LIMITS)
    commit(board, update("a", ANN, x=5), add(rect("b")), limits=LIMITS)
    board.refresh_from_db()
    before, seq_before = strip_v(snapshot(board)), board.seq
    restore(board, owner, 1)
    restore(board, owner, seq_before)
    board.refresh_from_db()
    assert strip_v(snapshot(board)) == before


def test_undo_of_a_restore_keeps_what_others_changed_since(board, owner):
    commit(board, add(rect("a")), limits=LIMITS)
    commit(board, update("a", ANN, x=50, y=50), limits=LIMITS)
    restore(board, owner, 1)  # a back at x=10, y=20
    commit(board, update("a", BOB, y=99), limits=LIMITS)  # Bob moves it after
    undo, _ = undo_as(owner)
    commit(board, undo, limits=LIMITS)
    board.refresh_from_db()
    (a,) = snapshot(board)
    assert (a["x"], a["y"]) == (50, 99)  # x reverted; Bob's y kept


def test_nothing_to_restore_commits_nothing(board, owner):
    commit(board, add(rect("a")), limits=LIMITS)
    board.refresh_from_db()
    result = restore(board, owner, 1)
    assert result.outcomes[0].error.code == "nothing_to_restore"
    board.refresh_from_db()
    assert board.seq == 1


def test_a_restore_past_the_element_limit_is_refused_whole(board, owner):
    commit(board, add(rect("a")), add(rect("b")), limits=LIMITS)
    commit(board, simple("clear", ANN), limits=LIMITS)
    commit(board, add(rect("c")), limits=LIMITS)
    board.refresh_from_db()
    before = snapshot(board)
    result = restore(board, owner, 2, limits=p.Limits(max_elements=1))
    assert result.outcomes[0].error.code == "board_full"
    board.refresh_from_db()
    assert snapshot(board) == before


# -- over HTTP ------------------------------------------------------------------------


def test_only_owners_restore_and_the_post_needs_a_csrf_token(
    board, owner, django_user_model
):
    from django.test import Client

    commit(board, add(rect("a")), add(rect("b")), limits=LIMITS)
    editor = django_user_model.objects.create_user("ed", password="pw")
    Membership.objects.create(board=board, user=editor, role="editor")
    co_owner = django_user_model.objects.create_user("co", password="pw")
    Membership.objects.create(board=board, user=co_owner, role="owner")
    json_accept = {"HTTP_ACCEPT": "application/json"}

    client = Client()
    client.force_login(editor)
    answer = client.post("/b/team/restore", {"seq": 1}, **json_accept)
    assert answer.status_code == 403

    checked = Client(enforce_csrf_checks=True)
    checked.force_login(owner)
    assert checked.post("/b/team/restore", {"seq": 1}).status_code == 403

    client.force_login(co_owner)
    answer = client.post("/b/team/restore", {"seq": 1}, **json_accept)
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"restored_to": 1, "seq": 3}
    for bad, status in (("abc", 400), ("99", 404), ("", 400)):
        answer = client.post("/b/team/restore", {"seq": bad}, **json_accept)
        assert answer.status_code == status, (bad, answer.content)
    assert client.post("/b/team/restore", {"seq": 1}, **json_accept).status_code == 409


@override_settings(WHITEBOARD_CHECKPOINT_OPS=2)
def test_state_json_gives_the_board_at_a_seq_with_the_board_pages_access(
    client, board, owner
):
    commit(board, add(rect("a")), add(rect("b")), delete("a"), limits=LIMITS)
    timeline.ensure_checkpoint(board.pk)
    answer = client.get("/b/team/state.json?at=1")
    assert answer.status_code == 200
    assert answer.json()["seq"] == 1
    assert [e["id"] for e in answer.json()["elements"]] == ["a"]
    now = client.get("/b/team/state.json").json()
    assert (now["seq"], [e["id"] for e in now["elements"]]) == (3, ["b"])
    for bad, status in (("x", 400), ("-1", 400), ("4", 404), ("1e3", 400)):
        assert client.get(f"/b/team/state.json?at={bad}").status_code == status
    assert client.get("/b/nope/state.json").status_code == 404
    board.is_public = False
    board.save()
    assert client.get("/b/team/state.json").status_code == 401
    client.force_login(owner)
    assert client.get("/b/team/state.json").status_code == 200


def test_restore_from_the_page_form_redirects_to_the_board(client, board, owner):
    commit(board, add(rect("a")), add(rect("b")), limits=LIMITS)
    client.force_login(owner)
    answer = client.post("/b/team/restore", {"seq": "1"})
    assert answer.status_code == 302 and answer["Location"] == "/b/team/"
    board.refresh_from_db()
    assert [e["id"] for e in snapshot(board)] == ["a"]
    assert json.loads(Op.objects.get(kind="restore").entries)[0]["ids"] == ["b"]
