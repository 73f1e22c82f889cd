"""Hostile values in every field of every POST endpoint: a 4xx, never a 500.

Run on both test passes (SQLite, and PostgreSQL, where a NUL in a string made
a `DataError` and a 500 before every form went through whiteboard/forms.py).
"""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from whiteboard import services
from whiteboard.models import Board, Membership, Role, ShareLink

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-9"
# Refused wherever a user types text: control characters, bidi overrides,
# lone surrogates (arriving as invalid UTF-8) and lengths beyond any field's.
REFUSED = [
    "\x00",
    "board\x00title",
    "\x07bell",
    "line\nbreak",
    "tab\there",
    "\u202eevil",
    "x" * 5000,
]
# Odd but harmless: accepted or refused, never a 500, stored without tricks.
ODD = [" ", "\ufeff", "%00", "<script>alert(1)</script>", "../../x", "😀" * 30]
HOSTILE = REFUSED + ODD
# Fields that choose among fixed options rather than hold typed text.
CHOICES = {"next", "visibility", "is_public"}

# (path, the fields a valid post sends); "{slug}", "{member}" and "{link}" are
# filled in per test. Every field is made hostile in turn.
WHITEBOARD_FORMS = [
    ("/boards/new", {"title": "Plan", "visibility": "public"}),
    ("/open", {"board": "team"}),
    ("/me/name", {"name": "Ada", "next": "/b/team/"}),
    (
        "/b/{slug}/settings/",
        {"title": "Team", "is_public": "on", "visitor_role": "editor"},
    ),
    ("/b/{slug}/members/", {"username": "member", "role": "editor"}),
    ("/b/{slug}/members/{member}/", {"role": "viewer"}),
    ("/b/{slug}/links/", {"role": "viewer", "label": "for the team"}),
    ("/b/{slug}/links/{link}/revoke/", {"next": "/"}),
    ("/b/{slug}/delete/", {"confirm": "{slug}"}),
]
ACCOUNT_FORMS = [
    ("/accounts/login/", {"username": "owner", "password": PASSWORD, "next": "/"}),
    ("/admin/login/", {"username": "owner", "password": PASSWORD, "next": "/admin/"}),
    (
        "/accounts/signup/",
        {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD},
    ),
    (
        "/accounts/password_change/",
        {"old_password": "x", "new_password1": "a-b-c-12345"}
        | {"new_password2": "a-b-c-12345"},
    ),
    ("/accounts/logout/", {"next": "/"}),
]


@pytest.fixture
def world(settings):
    settings.WHITEBOARD_LOGIN_RATE = settings.WHITEBOARD_SIGNUP_RATE = "off"
    settings.WHITEBOARD_BOARD_CREATE_RATE = "off"
    users = get_user_model().objects
    owner = users.create_user("owner", password=PASSWORD)
    member = users.create_user("member", password=PASSWORD)
    board = services.board_create(slug="team", title="Team", owner=owner)
    membership = Membership.objects.create(board=board, user=member, role=Role.EDITOR)
    link, _ = services.share_link_create(
        board=board, role=Role.VIEWER, label="", created_by=owner
    )
    return {
        "owner": owner,
        "slug": board.slug,
        "member": membership.pk,
        "link": link.pk,
    }


def fill(text, world):
    return text.format(**{key: world[key] for key in ("slug", "member", "link")})


def cases(forms):
    return [
        pytest.param(path, fields, field, value, id=f"{path}:{field}:{n}")
        for path, fields in forms
        for field in fields
        for n, value in enumerate(HOSTILE)
    ]


def post(world, path, fields, field, value, logged_in=True):
    browser = Client()
    if logged_in:
        browser.force_login(world["owner"])
    data = {name: fill(text, world) for name, text in fields.items()}
    return browser.post(fill(path, world), {**data, field: value})


@pytest.mark.parametrize("path, fields, field, value", cases(WHITEBOARD_FORMS))
def test_a_hostile_value_in_a_whiteboard_form_is_a_4xx(
    world, path, fields, field, value
):
    answer = post(world, path, fields, field, value, logged_in=path != "/me/name")
    assert answer.status_code < 500
    if value in REFUSED and field not in CHOICES:
        assert 400 <= answer.status_code < 500, answer.content.decode()[:500]
    stored = [*Board.objects.values_list("title", flat=True)]
    stored += ShareLink.objects.values_list("label", flat=True)
    assert not any(set(text) & set("\x00\x07\n\t\u202e\ufeff") for text in stored)


@pytest.mark.parametrize("path, fields, field, value", cases(ACCOUNT_FORMS))
def test_a_hostile_value_in_an_account_form_logs_in_and_creates_nothing(
    world, path, fields, field, value
):
    # Django's account forms answer an invalid form with the form again (200)
    # and its errors, and a refused CSRF or password with 403/200.
    logged_in = path in ("/accounts/password_change/", "/accounts/logout/")
    answer = post(world, path, fields, field, value, logged_in=logged_in)
    assert answer.status_code < 500
    if answer.status_code == 200:
        assert re.search(r"errorlist|errornote", answer.content.decode())
    users = get_user_model().objects.values_list("username", flat=True)
    assert sorted(users) in (["member", "owner"], ["member", "newbie", "owner"])
    assert not any("\x00" in name for name in users)


def test_a_nul_in_a_new_boards_title_is_refused_with_a_message(client):
    answer = client.post("/boards/new", {"title": "Plan\x00"})
    assert answer.status_code == 400
    assert "Control characters" in answer.content.decode()
    assert not Board.objects.exists()


def test_a_title_too_long_is_refused_with_its_limit(client):
    answer = client.post("/boards/new", {"title": "x" * 201})
    assert answer.status_code == 400
    assert "A title is 1 to 200 characters." in answer.content.decode()


def test_invalid_utf8_in_a_post_body_is_no_500(world):
    browser = Client()
    browser.force_login(world["owner"])
    answer = browser.post(
        f"/b/{world['slug']}/settings/",
        b"title=%ED%A0%80%00&visitor_role=editor",
        content_type="application/x-www-form-urlencoded",
    )
    assert answer.status_code == 400
