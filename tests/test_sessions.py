"""Sessions: a page view that stores nothing writes no session row, and
`clearsessions` (docs/deploy.md schedules it) removes the expired ones."""

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from whiteboard import services

pytestmark = pytest.mark.django_db


def test_cookie_less_page_views_create_no_session_rows():
    services.board_create(slug="team", title="Team")
    for _ in range(100):
        for path in ("/", "/b/team/"):
            answer = Client().get(path)
            assert answer.status_code == 200
            assert "sessionid" not in answer.cookies
    assert Session.objects.count() == 0


def test_a_guest_gets_a_session_once_it_keeps_a_name():
    services.board_create(slug="team", title="Team")
    guest = Client()
    guest.get("/b/team/")
    guest.post("/me/name", {"name": "Ada", "next": "/b/team/"})
    assert Session.objects.count() == 1
    assert "Ada" in guest.get("/b/team/").content.decode()


def test_clearsessions_removes_expired_sessions_only():
    for key, age in (("old", -1), ("live", 1)):
        Session.objects.create(
            session_key=key,
            session_data="",
            expire_date=timezone.now() + timedelta(days=age),
        )
    call_command("clearsessions")
    assert list(Session.objects.values_list("session_key", flat=True)) == ["live"]
