"""The rate limiter: rates, counting per IP / user / key, windows, client IPs."""

import subprocess

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.test import RequestFactory

from tests.live import PYTHON, ROOT, base_env
from whiteboard import ratelimit
from whiteboard.ratelimit import Rate, RateLimited, check, client_ip, parse_rate

factory = RequestFactory()


def request(ip="203.0.113.5", user=None, method="post", **headers):
    req = getattr(factory, method)("/", REMOTE_ADDR=ip, **headers)
    req.user = user or AnonymousUser()
    return req


class Clock:
    """The limiter's clock, moved by the test instead of waited for."""

    def __init__(self, now):
        self.now = now

    def time(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock(1_800_000_000.0)  # the start of a minute, an hour and a day
    monkeypatch.setattr(ratelimit, "time", fake)
    return fake


def attempts(scope, rate, count, **who):
    """Make `count` attempts; return how many got through before a refusal."""
    for done in range(count):
        try:
            check(request(**who), scope, rate)
        except RateLimited:
            return done
    return count


@pytest.mark.parametrize(
    "text, rate",
    [
        ("10/m", Rate(10, 60)),
        ("5/30s", Rate(5, 30)),
        ("100/h", Rate(100, 3600)),
        ("1000/d", Rate(1000, 86400)),
        (" 3 / min ", Rate(3, 60)),
        ("2/hour", Rate(2, 3600)),
    ],
)
def test_rates_are_parsed(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["off", "", None, "None"])
def test_a_rate_can_be_turned_off(text):
    assert parse_rate(text) is None


@pytest.mark.parametrize("text", ["10", "10/w", "0/m", "-1/m", "ten/m", "5/0s", "m/10"])
def test_a_bad_rate_is_a_configuration_error(text):
    with pytest.raises(ImproperlyConfigured, match="10/m"):
        parse_rate(text)


@pytest.mark.parametrize(
    "name, value",
    [
        ("WHITEBOARD_LOGIN_RATE", "ten a minute"),
        ("WHITEBOARD_TRUSTED_PROXIES", "nginx"),
    ],
)
def test_a_bad_setting_stops_the_server_at_start(name, value):
    result = subprocess.run(
        [PYTHON, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=base_env("sqlite:///:memory:", **{name: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert name in result.stderr


def test_the_attempt_over_the_limit_is_refused_with_code_and_message(clock):
    clock.now += 15  # 45 s left in this minute's window
    assert attempts("login", "3/m", 5) == 3
    with pytest.raises(RateLimited) as refused:
        check(request(), "login", "3/m")
    assert refused.value.code == "rate_limited"
    assert refused.value.status == 429
    assert refused.value.retry_after == 45
    assert refused.value.message == (
        "Too many login attempts; try again in 45 seconds."
    )


def test_the_next_window_admits_again(clock):
    assert attempts("login", "2/m", 3) == 2
    clock.now += 59
    assert attempts("login", "2/m", 1) == 0
    clock.now += 1
    assert attempts("login", "2/m", 3) == 2


def test_each_ip_has_its_own_count(clock):
    assert attempts("board_create", "2/m", 3, ip="198.51.100.1") == 2
    assert attempts("board_create", "2/m", 3, ip="198.51.100.2") == 2
    assert attempts("board_create", "2/m", 1, ip="2001:db8::1") == 1


def test_a_user_is_counted_across_addresses(clock, make_user):
    alice = make_user("alice")
    assert attempts("board_create", "2/m", 1, ip="198.51.100.1", user=alice) == 1
    assert attempts("board_create", "2/m", 1, ip="198.51.100.2", user=alice) == 1
    assert attempts("board_create", "2/m", 1, ip="198.51.100.3", user=alice) == 0
    bob = make_user("bob")
    assert attempts("board_create", "2/m", 1, ip="198.51.100.4", user=bob) == 1


def test_extra_keys_are_counted_across_addresses(clock):
    for n in range(2):
        check(request(ip=f"198.51.100.{n}"), "login", "2/m", keys=["username:eve"])
    with pytest.raises(RateLimited):
        check(request(ip="198.51.100.9"), "login", "2/m", keys=["username:eve"])
    check(request(ip="198.51.100.9"), "login", "2/m", keys=["username:mallory"])


def test_scopes_are_counted_apart(clock):
    assert attempts("login", "1/m", 2) == 1
    assert attempts("board_create", "1/m", 2) == 1


def test_the_scope_setting_is_the_default_rate(clock, settings):
    settings.WHITEBOARD_BOARD_CREATE_RATE = "2/h"
    assert attempts("board_create", None, 3) == 2
    with pytest.raises(RateLimited) as refused:
        check(request(), "board_create")
    assert refused.value.retry_after == 3600
    assert refused.value.message == "Too many new boards; try again in 3600 seconds."


def test_off_counts_nothing(clock, settings):
    settings.WHITEBOARD_LOGIN_RATE = "off"
    assert attempts("login", None, 50) == 50


def stored_keys():
    """Every key in the test's cache namespace, local memory or Redis."""
    if isinstance(cache._cache, dict):
        return list(cache._cache)
    client = cache._cache.get_client()
    return [key.decode() for key in client.keys(f"{cache.key_prefix}:*")]


def test_what_is_counted_is_not_stored_in_clear(clock):
    check(request(ip="198.51.100.77"), "login", "5/m", keys=["username:secret-sam"])
    keys = stored_keys()
    assert len(keys) == 2, "one counter for the address, one for the username"
    assert not any("198.51.100.77" in key or "secret-sam" in key for key in keys)


# -- the client address ---------------------------------------------------------


def test_the_client_is_the_direct_peer_by_default(settings):
    settings.WHITEBOARD_TRUSTED_PROXIES = []
    spoofed = request(ip="198.51.100.1", HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert client_ip(spoofed) == "198.51.100.1"


def test_a_trusted_proxy_names_the_client(settings):
    settings.WHITEBOARD_TRUSTED_PROXIES = ["127.0.0.1"]
    proxied = request(ip="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert client_ip(proxied) == "198.51.100.1"


def test_what_the_client_wrote_into_x_forwarded_for_is_ignored(settings):
    # nginx appends the peer it saw to whatever the client sent.
    settings.WHITEBOARD_TRUSTED_PROXIES = ["127.0.0.1", "10.0.0.0/8"]
    forged = request(
        ip="127.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.1, 10.1.2.3"
    )
    assert client_ip(forged) == "198.51.100.1"


def test_forged_addresses_do_not_escape_the_limit(clock, settings):
    settings.WHITEBOARD_TRUSTED_PROXIES = ["127.0.0.1"]
    for n in range(3):
        forged = f"192.0.2.{n}, 198.51.100.1"
        try:
            check(request(ip="127.0.0.1", HTTP_X_FORWARDED_FOR=forged), "login", "2/m")
        except RateLimited:
            assert n == 2
            return
    pytest.fail("the third attempt from 198.51.100.1 was not refused")


# -- the view decorator ---------------------------------------------------------


@ratelimit.limit("board_create", "2/m")
def make_board(request):
    return HttpResponse("created", status=201)


def test_the_decorator_answers_429_with_the_message(clock):
    clock.now += 20
    assert [make_board(request()).status_code for _ in range(2)] == [201, 201]
    refused = make_board(request())
    assert refused.status_code == 429
    assert refused["Retry-After"] == "40"
    assert "Too many new boards; try again in 40 seconds." in refused.content.decode()


def test_the_decorator_counts_only_the_listed_methods(clock):
    for _ in range(5):
        assert make_board(request(method="get")).status_code == 201
    assert make_board(request()).status_code == 201
