"""Creating boards from the home page: addresses, owners, and the abuse limit."""

import pytest
from django.core.cache import cache

from whiteboard.models import Board

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_counters():
    cache.clear()
    yield
    cache.clear()


def create(http, title, address="127.0.0.1", **fields):
    return http.post("/boards/new", {"title": title, **fields}, REMOTE_ADDR=address)


def test_a_logged_in_user_owns_the_private_board_they_create(client, make_user):
    olga = make_user("olga")
    client.force_login(olga)
    response = create(client, "Merger plans", visibility="private")
    board = Board.objects.get(owner=olga)
    assert response["Location"] == f"/b/{board.slug}/"
    assert not board.is_public and len(board.slug) == 20
    assert "merger" not in board.slug, "a private board's title stays out of its link"


def test_guests_create_public_boards_whatever_they_post(client):
    create(client, "Retro", visibility="private")
    board = Board.objects.get()
    assert board.is_public and board.owner is None
    assert board.slug.startswith("retro-")


def test_board_creation_is_limited_per_ip_with_a_clear_message(client, settings):
    settings.WHITEBOARD_BOARD_CREATE_RATE = "2/h"
    assert [create(client, f"B{i}").status_code for i in range(2)] == [302, 302]
    refused = create(client, "One too many")
    assert refused.status_code == 429
    assert "Too many" in refused.content.decode()
    assert int(refused["Retry-After"]) > 0
    assert Board.objects.count() == 2


def test_board_creation_is_limited_per_user_across_addresses(
    client, make_user, settings
):
    settings.WHITEBOARD_BOARD_CREATE_RATE = "2/h"
    client.force_login(make_user("olga"))
    for i, address in enumerate(["10.0.0.1", "10.0.0.2"]):
        assert create(client, f"B{i}", address).status_code == 302
    assert create(client, "B3", "10.0.0.3").status_code == 429
