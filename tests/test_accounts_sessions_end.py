"""Logging out, a new password, deactivating or deleting an account tell the
account's sockets to close (the `user.ended` event of `broadcast`).

A real in-memory channel layer carries the event: each test adds a channel of
its own to the group `user.<id>` and reads what arrives there.
"""

import asyncio
import logging

import pytest
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client

from whiteboard import broadcast

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct-horse-battery-9"
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


class BrokenLayer(InMemoryChannelLayer):
    """A channel layer whose server is down."""

    async def group_send(self, group, message):
        raise ConnectionError("channel layer unreachable")


@pytest.fixture
def layer(settings):
    settings.CHANNEL_LAYERS = IN_MEMORY
    return get_channel_layer()


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def admin_browser():
    boss = get_user_model().objects.create_superuser("boss", password=PASSWORD)
    browser = Client()
    browser.force_login(boss)
    return browser


class Sockets:
    """Stands in for the open sockets of one account: a channel in its group."""

    def __init__(self, layer, user):
        self.layer = layer
        self.channel = async_to_sync(layer.new_channel)()
        group = broadcast.user_group(user.pk)
        async_to_sync(layer.group_add)(group, self.channel)

    def ended(self, timeout=2):
        async def receive():
            return await asyncio.wait_for(self.layer.receive(self.channel), timeout)

        return async_to_sync(receive)()

    def nothing(self):
        with pytest.raises(TimeoutError):
            self.ended(timeout=0.2)


def logged_in(user):
    browser = Client()
    assert (
        browser.post(
            "/accounts/login/", {"username": user.username, "password": PASSWORD}
        ).status_code
        == 302
    )
    return browser


def test_logging_out_ends_the_accounts_sockets(layer, alice):
    browser = logged_in(alice)
    sockets = Sockets(layer, alice)
    assert browser.post("/accounts/logout/").status_code == 302
    event = sockets.ended()
    assert event == {
        "type": "user.ended",
        "user": alice.pk,
        "message": "You logged out.",
    }


def test_changing_ones_own_password_ends_the_accounts_sockets(layer, alice):
    browser = logged_in(alice)
    sockets = Sockets(layer, alice)
    new = "another-horse-staple-7"
    answer = browser.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert answer.status_code == 302
    assert "password was changed" in sockets.ended()["message"]


def test_an_admin_setting_a_new_password_ends_the_accounts_sockets(
    layer, alice, admin_browser
):
    sockets = Sockets(layer, alice)
    new = "admin-chosen-staple-8"
    answer = admin_browser.post(
        f"/admin/auth/user/{alice.pk}/password/",
        {"password1": new, "password2": new, "usable_password": "true"},
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]
    assert "password was changed" in sockets.ended()["message"]


def test_deactivating_an_account_ends_its_sockets_after_the_commit(layer, alice):
    sockets = Sockets(layer, alice)
    with transaction.atomic():
        alice.is_active = False
        alice.save()
        sockets.nothing()  # not before the change is committed
    assert sockets.ended()["message"] == "Your account was deactivated."


def test_a_rolled_back_deactivation_ends_nothing(layer, alice):
    sockets = Sockets(layer, alice)
    with pytest.raises(RuntimeError), transaction.atomic():
        alice.is_active = False
        alice.save()
        raise RuntimeError("the admin's save failed")
    sockets.nothing()


def test_deleting_an_account_in_the_admin_ends_its_sockets(layer, alice, admin_browser):
    sockets = Sockets(layer, alice)
    answer = admin_browser.post(f"/admin/auth/user/{alice.pk}/delete/", {"post": "yes"})
    assert answer.status_code == 302
    assert not get_user_model().objects.filter(pk=alice.pk).exists()
    assert sockets.ended()["message"] == "Your account was deleted."


def test_saving_other_fields_ends_nothing(layer, alice):
    sockets = Sockets(layer, alice)
    alice.first_name = "Alice"
    alice.save()
    logged_in(alice)  # a login saves last_login
    sockets.nothing()


def test_a_failing_channel_layer_never_fails_the_request(settings, alice, caplog):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": f"{__name__}.BrokenLayer"},
    }
    browser = logged_in(alice)
    with caplog.at_level(logging.ERROR, logger="whiteboard.signals"):
        answer = browser.post("/accounts/logout/")
    assert answer.status_code == 302 and answer["Location"] == "/"
    assert f"could not end the sockets of user {alice.pk}" in caplog.text
    assert Client().get("/").status_code == 200
