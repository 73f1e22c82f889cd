"""The one permission function, on its own: every way in, and every refusal."""

import pytest
from django.contrib.auth.models import AnonymousUser

from whiteboard import access, services
from whiteboard.models import Role

pytestmark = pytest.mark.django_db

GUEST = AnonymousUser()


@pytest.fixture
def stranger(make_user):
    return make_user("sam")


@pytest.fixture
def private(owner):
    return services.board_create(title="Plans", owner=owner, is_public=False)


@pytest.fixture
def public(owner):
    return services.board_create(title="Open", owner=owner)


def link_key(board, role):
    return services.share_link_create(board=board, role=role)[1]


def test_missing_board_is_not_found():
    with pytest.raises(access.BoardNotFound):
        access.board_role(None, GUEST)


def test_owner_is_owner_whatever_the_visibility(private, public, owner):
    assert access.board_role(private, owner) == Role.OWNER
    assert access.board_role(public, owner) == Role.OWNER


def test_private_board_refuses_guests_with_login_required(private):
    with pytest.raises(access.LoginRequired):
        access.board_role(private, GUEST)
    with pytest.raises(access.LoginRequired):
        access.board_role(private, None)


def test_private_board_refuses_a_logged_in_stranger_with_no_access(private, stranger):
    with pytest.raises(access.NoAccess):
        access.board_role(private, stranger)


@pytest.mark.parametrize("role", [Role.OWNER, Role.EDITOR, Role.VIEWER])
def test_member_gets_the_membership_role(private, stranger, role):
    services.member_set(board=private, user=stranger, role=role)
    assert access.board_role(private, stranger) == role


def test_public_board_gives_visitors_the_visitor_role(public, stranger):
    assert access.board_role(public, GUEST) == Role.EDITOR
    assert access.board_role(public, stranger) == Role.EDITOR
    public.visitor_role = Role.VIEWER
    assert access.board_role(public, GUEST) == Role.VIEWER


def test_member_role_beats_a_lesser_visitor_role_and_not_the_reverse(public, stranger):
    services.member_set(board=public, user=stranger, role=Role.VIEWER)
    assert access.board_role(public, stranger) == Role.EDITOR, "the best grant wins"
    public.visitor_role = Role.VIEWER
    services.member_set(board=public, user=stranger, role=Role.EDITOR)
    assert access.board_role(public, stranger) == Role.EDITOR


@pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER])
def test_share_key_admits_guests_and_strangers_with_its_role(private, stranger, role):
    key = link_key(private, role)
    assert access.board_role(private, GUEST, [key]) == role
    assert access.board_role(private, stranger, [key]) == role


def test_revoked_wrong_or_other_boards_key_admits_nobody(private, public, stranger):
    revoked, key = services.share_link_create(board=private, role=Role.EDITOR)
    services.share_link_revoke(link=revoked)
    other = link_key(public, Role.EDITOR)
    for keys in ([key], [other], ["not-a-key"], [None], [key + "x"]):
        with pytest.raises(access.NoAccess):
            access.board_role(private, stranger, keys)


def test_the_best_of_several_links_applies(private):
    viewer, editor = link_key(private, Role.VIEWER), link_key(private, Role.EDITOR)
    assert access.board_role(private, GUEST, [viewer, editor]) == Role.EDITOR


def test_only_owners_can_manage(private, stranger):
    services.member_set(board=private, user=stranger, role=Role.EDITOR)
    assert not access.can_manage(private, stranger)
    assert not access.can_manage(private, GUEST)
    services.member_set(board=private, user=stranger, role=Role.OWNER)
    assert access.can_manage(private, stranger)


def test_session_keys_are_kept_per_board(private, public):
    session = {}
    access.remember_key(session, private, "key-one")
    access.remember_key(session, public, "key-two")
    assert access.session_keys(session, private) == ("key-one",)
    assert access.session_keys(session, public) == ("key-two",)
    assert access.session_keys({access.SESSION_KEYS: "junk"}, private) == ()
    assert access.session_keys(None, private) == ()


def test_share_keys_are_stored_only_as_digests(private):
    link, key = services.share_link_create(board=private, role=Role.VIEWER)
    link.refresh_from_db()
    assert key not in (link.digest, link.hint)
    assert len(key) >= 32 and key.startswith(link.hint)


def test_private_boards_get_unguessable_slugs_without_their_title(owner):
    one = services.board_create(title="Merger plans", owner=owner, is_public=False)
    two = services.board_create(title="Merger plans", owner=owner, is_public=False)
    assert one.slug != two.slug
    assert "merger" not in one.slug and len(one.slug) == 20
    public = services.board_create(title="Team retro", owner=owner)
    assert public.slug.startswith("team-retro-") and len(public.slug) == 19


def test_a_users_boards_are_those_they_own_or_belong_to(private, public, stranger):
    from whiteboard.selectors import boards_of

    assert list(boards_of(stranger)) == []
    services.member_set(board=private, user=stranger, role=Role.VIEWER)
    assert list(boards_of(stranger)) == [private]
    assert set(boards_of(private.owner)) == {private, public}
    assert list(boards_of(GUEST)) == []
