"""Accounts under /accounts/: sign up, log in and out, change password, limits."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password=PASSWORD)


def csrf_token(page):
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def without_token(page):
    return re.sub(r'value="[^"]+"', "", page.content.decode())


def log_in(client, username="alice", password=PASSWORD, **extra):
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, **extra
    )


def logged_in_as(client):
    page = client.get("/").content.decode()
    match = re.search(r'<span class="nav-user">([^<]*)</span>', page)
    return match.group(1) if match else None


# -- log in ---------------------------------------------------------------------


def test_the_login_page_matches_the_site_and_offers_sign_up(client):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'class="site-header"' in text and "whiteboard/site.css" in text
    assert 'name="username"' in text and 'name="password"' in text
    assert 'href="/accounts/signup/"' in text


def test_logging_in_lands_on_the_home_page_with_the_name_in_the_header(client, alice):
    answer = log_in(client)
    assert answer.status_code == 302 and answer["Location"] == "/"
    assert logged_in_as(client) == "alice"


def test_logging_in_returns_to_the_page_asked_for_but_never_off_site(client, alice):
    answer = client.post(
        "/accounts/login/",
        {"username": "alice", "password": PASSWORD, "next": "/?board=1"},
    )
    assert answer["Location"] == "/?board=1"
    client.post("/accounts/logout/")
    answer = client.post(
        "/accounts/login/",
        {"username": "alice", "password": PASSWORD, "next": "https://evil.test/"},
    )
    assert answer["Location"] == "/"


def test_a_wrong_password_is_refused_with_a_message(client, alice):
    answer = log_in(client, password="wrong-password")
    assert answer.status_code == 200
    assert "Please enter a correct username and password" in answer.content.decode()
    assert logged_in_as(client) is None


def test_logging_in_rotates_the_session_and_keeps_what_it_held(client, alice):
    session = client.session
    session["board_grants"] = {"team": "editor"}  # e.g. a share link's grant
    session.save()
    before = client.cookies["sessionid"].value
    log_in(client)
    after = client.cookies["sessionid"].value
    assert after != before
    assert not Session.objects.filter(session_key=before).exists()
    assert client.session["board_grants"] == {"team": "editor"}


def test_the_header_links_to_log_in_and_back_without_the_query(client):
    text = client.get("/?key=secret-share-key").content.decode()
    assert 'href="/accounts/login/?next=/"' in text
    assert "secret-share-key" not in text


# -- log out ----------------------------------------------------------------------


def test_logging_out_takes_a_post_from_the_header_form(client, alice):
    log_in(client)
    page = client.get("/").content.decode()
    assert re.search(
        r'<form class="inline-form" method="post" action="/accounts/logout/"', page
    )
    assert client.get("/accounts/logout/").status_code == 405
    assert logged_in_as(client) == "alice"
    answer = client.post("/accounts/logout/")
    assert answer.status_code == 302 and answer["Location"] == "/"
    assert logged_in_as(client) is None


# -- sign up ----------------------------------------------------------------------


def sign_up(client, username="bob", password=PASSWORD, **data):
    return client.post(
        "/accounts/signup/",
        {"username": username, "password1": password, "password2": password, **data},
    )


def test_signing_up_creates_the_account_and_logs_in(client):
    answer = sign_up(client)
    assert answer.status_code == 302 and answer["Location"] == "/"
    assert get_user_model().objects.get(username="bob").check_password(PASSWORD)
    assert logged_in_as(client) == "bob"


def test_sign_up_returns_to_a_local_next_only(client):
    assert sign_up(client, next="/?from=signup")["Location"] == "/?from=signup"
    other = Client()
    assert sign_up(other, "carol", next="//evil.test/")["Location"] == "/"


def test_sign_up_refuses_a_weak_password_and_a_taken_name(client, alice):
    weak = sign_up(client, "dave", password="12345")
    assert weak.status_code == 200
    assert "This password is too short" in weak.content.decode()
    taken = sign_up(client, "alice")
    assert "A user with that username already exists" in taken.content.decode()
    assert not get_user_model().objects.filter(username="dave").exists()
    assert logged_in_as(client) is None


def test_sign_up_can_be_turned_off(client, settings):
    settings.WHITEBOARD_SIGNUP_OPEN = False
    page = client.get("/accounts/signup/")
    assert page.status_code == 404
    assert "Sign-up is closed" in page.content.decode()
    assert sign_up(client).status_code == 404
    assert not get_user_model().objects.filter(username="bob").exists()
    for path in ("/accounts/login/", "/"):
        assert "/accounts/signup/" not in client.get(path).content.decode()


# -- change password --------------------------------------------------------------


def test_changing_the_password_needs_a_login(client):
    answer = client.get("/accounts/password_change/")
    assert answer.status_code == 302
    assert answer["Location"] == "/accounts/login/?next=/accounts/password_change/"


def test_changing_the_password_keeps_this_browser_logged_in(client, alice):
    log_in(client)
    new = "another-horse-staple-7"
    answer = client.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert answer["Location"] == "/accounts/password_change/done/"
    assert "Password changed" in client.get(answer["Location"]).content.decode()
    assert logged_in_as(client) == "alice"
    assert log_in(Client()).status_code == 200, "the old password no longer works"
    assert log_in(Client(), password=new).status_code == 302


def test_password_reset_is_not_offered(client):
    assert client.get("/accounts/password_reset/").status_code == 404
    assert "administrator" in client.get("/accounts/login/").content.decode()


# -- CSRF -------------------------------------------------------------------------

FORMS = [
    ("/accounts/login/", {"username": "alice", "password": PASSWORD}),
    (
        "/accounts/signup/",
        {"username": "erin", "password1": PASSWORD, "password2": PASSWORD},
    ),
    (
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": "x-y-z-123456"}
        | {"new_password2": "x-y-z-123456"},
    ),
    ("/accounts/logout/", {}),
]


@pytest.mark.parametrize("path, data", FORMS)
def test_every_account_form_refuses_a_post_without_the_csrf_token(path, data, alice):
    browser = Client(enforce_csrf_checks=True)
    if path != "/accounts/login/":
        browser.force_login(alice)
    browser.get("/accounts/login/")  # sets the csrftoken cookie; the field is left out
    answer = browser.post(path, data)
    assert answer.status_code == 403
    assert "CSRF verification failed" in answer.content.decode()


@pytest.mark.parametrize("path, data", FORMS)
def test_every_account_form_accepts_its_own_csrf_token(path, data, alice):
    browser = Client(enforce_csrf_checks=True)
    if path != "/accounts/login/":
        browser.force_login(alice)
    form_page = "/" if path == "/accounts/logout/" else path
    token = csrf_token(browser.get(form_page).content.decode())
    answer = browser.post(path, {**data, "csrfmiddlewaretoken": token})
    assert answer.status_code == 302


# -- the login limit --------------------------------------------------------------

LIMITED = "Too many login attempts; try again in"


def test_too_many_attempts_from_one_address_are_refused_with_429(client, settings):
    settings.WHITEBOARD_LOGIN_RATE = "3/d"
    for n in range(3):
        assert log_in(client, f"user{n}", "guess").status_code == 200
    refused = log_in(client, "user9", "guess")
    assert refused.status_code == 429
    text = refused.content.decode()
    assert re.search(LIMITED + r" \d+ seconds?\.", text)
    assert 1 <= int(refused["Retry-After"]) <= 86400


def test_a_limited_login_is_refused_even_with_the_right_password(
    client, alice, settings
):
    settings.WHITEBOARD_LOGIN_RATE = "2/d"
    for _ in range(2):
        log_in(client, password="guess")
    wrong = log_in(client, password="guess")
    right = log_in(client)
    assert right.status_code == wrong.status_code == 429
    assert logged_in_as(client) is None

    # The password was not even checked: both pages say exactly the same (but
    # for the wait they name, which a second boundary between them can change).
    def page(response):
        return re.sub(r"in \d+ seconds", "in N seconds", without_token(response))

    assert "in N seconds" in page(right)
    assert page(right) == page(wrong)


def test_attempts_on_one_username_are_limited_across_addresses(alice, settings):
    settings.WHITEBOARD_LOGIN_RATE = "2/d"
    for n in range(2):
        log_in(Client(REMOTE_ADDR=f"198.51.100.{n}"), password="guess")
    fresh_address = Client(REMOTE_ADDR="198.51.100.50")
    assert log_in(fresh_address, "ALICE ", "guess").status_code == 429
    assert log_in(fresh_address, "bob", "guess").status_code == 200


def test_showing_the_login_page_is_not_counted(client, alice, settings):
    settings.WHITEBOARD_LOGIN_RATE = "1/d"
    for _ in range(5):
        assert client.get("/accounts/login/").status_code == 200
    assert log_in(client).status_code == 302


def test_sign_ups_from_one_address_are_limited(client, settings):
    settings.WHITEBOARD_SIGNUP_RATE = "2/d"
    assert sign_up(client, "frank")["Location"] == "/"
    assert sign_up(Client(), "grace", password="short").status_code == 200
    refused = sign_up(Client(), "heidi")
    assert refused.status_code == 429
    assert "Too many sign-ups; try again in" in refused.content.decode()
    assert not get_user_model().objects.filter(username="heidi").exists()


def test_a_refused_login_logs_neither_the_password_nor_the_username(
    client, settings, caplog
):
    settings.WHITEBOARD_LOGIN_RATE = "1/d"
    log_in(client, "ivan-the-user", "hunter2-secret")
    log_in(client, "ivan-the-user", "hunter2-secret")
    assert "rate limited: login from 127.0.0.1" in caplog.text
    assert "hunter2" not in caplog.text and "ivan" not in caplog.text


# -- every login form shares the limit ---------------------------------------------


def admin_log_in(client, username="alice", password=PASSWORD):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "next": "/admin/"},
    )


def test_the_admin_login_is_limited_and_then_refuses_the_right_password(
    client, settings
):
    get_user_model().objects.create_superuser("root", password=PASSWORD)
    settings.WHITEBOARD_LOGIN_RATE = "3/d"
    for _ in range(3):
        assert admin_log_in(client, "root", "guess").status_code == 200
    refused = admin_log_in(client, "root")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 86400
    assert LIMITED in refused.content.decode()
    assert client.get("/admin/").status_code == 302, "not logged in"


def test_the_admin_login_still_logs_in_under_the_limit(client):
    get_user_model().objects.create_superuser("root", password=PASSWORD)
    answer = admin_log_in(client, "root")
    assert answer.status_code == 302 and answer["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_guesses_on_one_form_count_on_the_others(client, alice, settings):
    settings.WHITEBOARD_LOGIN_RATE = "2/d"
    admin_log_in(Client(REMOTE_ADDR="198.51.100.1"), password="guess")
    log_in(Client(REMOTE_ADDR="198.51.100.2"), password="guess")
    assert log_in(Client(REMOTE_ADDR="198.51.100.3")).status_code == 429
    assert admin_log_in(Client(REMOTE_ADDR="198.51.100.4")).status_code == 429


def test_guessing_the_old_password_on_the_change_form_is_limited(
    client, alice, settings
):
    settings.WHITEBOARD_LOGIN_RATE = "3/d"
    client.force_login(alice)
    fields = {"new_password1": "x-y-z-123456", "new_password2": "x-y-z-123456"}
    for n in range(3):
        guess = {"old_password": f"guess-{n}", **fields}
        assert client.post("/accounts/password_change/", guess).status_code == 200
    right = client.post(
        "/accounts/password_change/", {"old_password": PASSWORD, **fields}
    )
    assert right.status_code == 429
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)
