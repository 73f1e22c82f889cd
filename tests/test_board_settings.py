"""The board settings page and share links, through Django's test client."""

import re

import pytest
from django.test import Client

from whiteboard import access, services
from whiteboard.models import Board, Membership, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def mia(make_user):
    return make_user("mia")


@pytest.fixture
def plans(owner):
    return services.board_create(title="Plans", owner=owner, is_public=False)


def logged_in(user, **options):
    http = Client(**options)
    http.force_login(user)
    return http


def url(board, rest=""):
    return f"/b/{board.slug}/{rest}"


def settings_posts(board, member, link):
    """Every form on the settings page: (url, data)."""
    return [
        (url(board, "settings/"), {"title": "T", "visitor_role": "editor"}),
        (url(board, "members/"), {"username": "mia", "role": "viewer"}),
        (url(board, f"members/{member.pk}/"), {"role": "remove"}),
        (url(board, "links/"), {"role": "viewer"}),
        (url(board, f"links/{link.pk}/revoke/"), {}),
        (url(board, "delete/"), {"confirm": board.slug}),
    ]


# -- who reaches the page ---------------------------------------------------------


def test_a_guest_is_sent_to_log_in_even_with_an_editor_link(client, plans):
    response = client.get(url(plans, "settings/"))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    _, key = services.share_link_create(board=plans, role=Role.EDITOR)
    client.get(url(plans, f"?key={key}"))
    response = client.get(url(plans, "settings/"))
    assert response.status_code == 302, "a link never makes anyone an owner"


@pytest.mark.parametrize("role", [None, Role.EDITOR, Role.VIEWER])
def test_non_owners_get_403(plans, mia, role):
    if role:
        services.member_set(board=plans, user=mia, role=role)
    response = logged_in(mia).get(url(plans, "settings/"))
    assert response.status_code == 403
    assert "Plans" not in response.content.decode(), "nothing of the board shows"


def test_owner_and_co_owners_get_the_page(plans, owner, mia):
    assert logged_in(owner).get(url(plans, "settings/")).status_code == 200
    services.member_set(board=plans, user=mia, role=Role.OWNER)
    assert logged_in(mia).get(url(plans, "settings/")).status_code == 200


def test_unknown_board_is_404(owner):
    assert logged_in(owner).get("/b/nope/settings/").status_code == 404


def test_csrf_is_enforced_on_every_settings_form(plans, owner, mia):
    member = services.member_set(board=plans, user=mia, role=Role.EDITOR)
    link, _ = services.share_link_create(board=plans, role=Role.VIEWER)
    http = logged_in(owner, enforce_csrf_checks=True)
    for path, data in settings_posts(plans, member, link):
        assert http.post(path, data).status_code == 403, path
    plans.refresh_from_db()
    assert plans.title == "Plans"
    assert Membership.objects.filter(pk=member.pk).exists()
    link.refresh_from_db()
    assert link.revoked_at is None


def test_non_owner_posts_change_nothing(plans, owner, mia):
    member = services.member_set(board=plans, user=mia, role=Role.EDITOR)
    link, _ = services.share_link_create(board=plans, role=Role.VIEWER)
    http = logged_in(mia)
    for path, data in settings_posts(plans, member, link):
        assert http.post(path, data).status_code == 403, path
    assert Board.objects.filter(pk=plans.pk, title="Plans").exists()
    assert Membership.objects.get(pk=member.pk).role == Role.EDITOR


# -- what owners do ------------------------------------------------------------------


def test_owner_changes_title_visibility_visitor_role_and_lock(plans, owner):
    data = {"title": "Public plans", "is_public": "on", "visitor_role": "viewer"}
    data["locked"] = "on"
    response = logged_in(owner).post(url(plans, "settings/"), data)
    assert response.status_code == 302
    plans.refresh_from_db()
    assert (plans.title, plans.is_public, plans.visitor_role, plans.locked) == (
        "Public plans",
        True,
        "viewer",
        True,
    )


def test_owner_adds_changes_and_removes_members(plans, owner, mia):
    http = logged_in(owner)
    http.post(url(plans, "members/"), {"username": "mia", "role": "viewer"})
    member = Membership.objects.get(board=plans, user=mia)
    assert member.role == Role.VIEWER
    assert access.board_role(plans, mia) == Role.VIEWER
    http.post(url(plans, f"members/{member.pk}/"), {"role": "editor"})
    assert access.board_role(plans, mia) == Role.EDITOR
    http.post(url(plans, f"members/{member.pk}/"), {"role": "remove"})
    with pytest.raises(access.NoAccess):
        access.board_role(plans, mia)


def test_adding_an_unknown_user_says_so(plans, owner):
    response = logged_in(owner).post(url(plans, "members/"), {"username": "ghost"})
    assert response.status_code == 400
    assert "There is no user called" in response.content.decode()


def test_new_link_is_shown_once_then_only_its_first_characters(plans, owner):
    http = logged_in(owner)
    response = http.post(url(plans, "links/"), {"role": "editor"}, follow=True)
    text = response.content.decode()
    [link] = re.findall(r'value="(http://testserver/b/[^"]+\?key=[^"]+)"', text)
    key = link.split("key=")[1]
    assert key[:6] in text
    again = http.get(url(plans, "settings/")).content.decode()
    assert key not in again and key[:6] in again


def test_share_link_lands_in_the_session_and_leaves_the_address(plans, client):
    _, key = services.share_link_create(board=plans, role=Role.EDITOR)
    response = client.get(url(plans, f"?key={key}"))
    assert response.status_code == 302
    assert response["Location"] == url(plans), "the key leaves the address bar"
    assert client.get(url(plans)).status_code == 200
    assert access.session_keys(client.session, plans) == (key,)


def test_a_bad_or_revoked_key_is_refused_with_a_message(plans, client):
    link, key = services.share_link_create(board=plans, role=Role.EDITOR)
    services.share_link_revoke(link=link)
    response = client.get(url(plans, f"?key={key}"), follow=True)
    assert "does not work" in response.content.decode()
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert key not in response.redirect_chain[-1][0], "never in the login's next"


def test_revoking_a_link_closes_the_board_page_to_its_holders(plans, owner, client):
    link, key = services.share_link_create(board=plans, role=Role.VIEWER)
    client.get(url(plans, f"?key={key}"))
    assert client.get(url(plans)).status_code == 200
    logged_in(owner).post(url(plans, f"links/{link.pk}/revoke/"))
    assert client.get(url(plans)).status_code == 302


def test_deleting_needs_the_slug_typed_in(plans, owner):
    http = logged_in(owner)
    http.post(url(plans, "delete/"), {"confirm": "wrong"})
    assert Board.objects.filter(pk=plans.pk).exists()
    response = http.post(url(plans, "delete/"), {"confirm": plans.slug})
    assert response["Location"] == "/"
    assert not Board.objects.filter(pk=plans.pk).exists()
