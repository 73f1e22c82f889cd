"""The server's own pages: the home page lists public boards only."""

import pytest

from whiteboard import services

pytestmark = pytest.mark.django_db


def test_home_lists_public_boards_and_hides_private_ones(client):
    services.board_create(slug="open-plan", title="Open <plan>")
    services.board_create(slug="secret", title="Secret", is_public=False)
    page = client.get("/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "/ws/boards/open-plan/" in text
    assert "Open &lt;plan&gt;" in text, "titles are escaped"
    assert "secret" not in text.lower()


def test_health_check_answers_ok(client):
    assert client.get("/healthz").json() == {"status": "ok"}
