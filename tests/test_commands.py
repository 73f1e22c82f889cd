"""The createboard management command."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from whiteboard.models import Board

pytestmark = pytest.mark.django_db


def createboard(*args):
    out = StringIO()
    call_command("createboard", *args, stdout=out)
    return out.getvalue()


def test_creates_a_public_board_titled_by_its_slug():
    out = createboard("team-1")
    board = Board.objects.get(slug="team-1")
    assert (board.title, board.is_public, board.owner, board.locked) == (
        "team-1",
        True,
        None,
        False,
    )
    assert (board.seq, board.visitor_role) == (0, "editor")
    assert out == "Created public board 'team-1' (team-1).\n"


def test_creates_a_private_board_with_title_and_owner(django_user_model):
    olga = django_user_model.objects.create_user("olga")
    out = createboard("plans", "--private", "--owner", "olga", "--title", "Our plans")
    board = Board.objects.get(slug="plans")
    assert (board.title, board.is_public, board.owner) == ("Our plans", False, olga)
    assert out == "Created private board 'plans' (Our plans).\n"


def test_without_a_slug_a_private_board_gets_an_unguessable_one():
    out = createboard("--private", "--title", "Merger")
    board = Board.objects.get(title="Merger")
    assert len(board.slug) == 20 and "merger" not in board.slug
    assert out == f"Created private board {board.slug!r} (Merger).\n"


@pytest.mark.parametrize(
    "slug", ["Team", "has space", "under_score", "a" * 65, "", "trailing\n"]
)
def test_bad_slug_is_a_command_error_and_creates_nothing(slug):
    with pytest.raises(CommandError, match="slug"):
        createboard(slug)
    assert not Board.objects.exists()


def test_longest_slug_is_accepted():
    createboard("a" * 64)
    assert Board.objects.filter(slug="a" * 64).exists()


def test_unknown_owner_is_a_command_error_and_creates_nothing():
    with pytest.raises(CommandError, match="There is no user 'ghost'"):
        createboard("team", "--owner", "ghost")
    assert not Board.objects.exists()


def test_existing_slug_is_a_command_error_without_exist_ok():
    createboard("team", "--title", "First")
    with pytest.raises(CommandError, match="slug"):
        createboard("team", "--title", "Second")
    assert Board.objects.get(slug="team").title == "First"


def test_exist_ok_leaves_an_existing_board_alone():
    createboard("team", "--title", "First")
    out = createboard("team", "--exist-ok", "--private", "--title", "Second")
    board = Board.objects.get(slug="team")
    assert (board.title, board.is_public) == ("First", True)
    assert out == "Board 'team' already exists.\n"
    assert Board.objects.count() == 1


def test_exist_ok_creates_a_missing_board():
    createboard("fresh", "--exist-ok")
    assert Board.objects.filter(slug="fresh", is_public=True).exists()


def test_too_long_title_is_a_command_error():
    with pytest.raises(CommandError, match="title"):
        createboard("team", "--title", "t" * 201)
    assert not Board.objects.exists()
