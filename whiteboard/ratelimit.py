"""Abuse limits: fixed-window counters in Django's cache, per IP and per user.

A rate such as "10/m" allows 10 attempts per key in each minute-long window; the
next one is refused until the window ends. The counters live in Django's cache,
which is Redis (shared by every process) when REDIS_URL is set, and each
process's own memory otherwise. What is counted is hashed first: neither an
address nor a username someone tried is written to the cache in clear.

Views call `check(request, scope)` before doing the work, or wrap themselves in
`@limit(scope)`, which answers HTTP 429 with the message.
"""

import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass
from functools import wraps
from ipaddress import ip_address, ip_network

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600}
UNITS["d"] = UNITS["day"] = 86400
RATE_PATTERN = re.compile(r"(\d+)/(\d*)(s|sec|m|min|h|hour|d|day)")
OFF = {"", "off", "none"}
# What each scope counts, for the message ("Too many login attempts; ...").
NOUNS = {
    "login": "login attempts",
    "signup": "sign-ups",
    "board_create": "new boards",
}


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int  # seconds


def parse_rate(text):
    """`"10/m"` -> Rate(10, 60). Also `"5/30s"`, `"100/h"`, `"1000/d"`.

    `"off"` (or empty) turns a limit off and gives None; anything else that is
    not a rate raises ImproperlyConfigured, so a typo stops the server at start.
    """
    text = (text or "").strip().lower().replace(" ", "")
    if text in OFF:
        return None
    match = RATE_PATTERN.fullmatch(text)
    if not match or int(match[1]) < 1 or match[2].lstrip("0") != match[2]:
        raise ImproperlyConfigured(
            f"{text!r} is not a rate: use COUNT/UNIT such as 10/m, 5/30s, 100/h "
            "or 1000/d (or off)"
        )
    return Rate(int(match[1]), int(match[2] or 1) * UNITS[match[3]])


def configured_rate(scope):
    """The rate of `scope` from its setting, e.g. WHITEBOARD_LOGIN_RATE."""
    return parse_rate(getattr(settings, f"WHITEBOARD_{scope.upper()}_RATE", None))


class RateLimited(Exception):
    """Too many attempts at `scope`; `retry_after` is in whole seconds (>= 1)."""

    code = "rate_limited"
    status = 429

    def __init__(self, scope, retry_after):
        self.scope = scope
        self.retry_after = retry_after
        noun = NOUNS.get(scope, "requests")
        unit = "second" if retry_after == 1 else "seconds"
        self.message = f"Too many {noun}; try again in {retry_after} {unit}."
        super().__init__(self.message)


def trusted_proxies():
    return [
        ip_network(entry, strict=False) for entry in settings.WHITEBOARD_TRUSTED_PROXIES
    ]


def _is_proxy(address, proxies):
    try:
        return any(ip_address(address) in network for network in proxies)
    except ValueError:
        return False


def client_ip(request):
    """The address to count a request against.

    REMOTE_ADDR, unless that is one of WHITEBOARD_TRUSTED_PROXIES: then the
    right-most X-Forwarded-For entry that is not a trusted proxy. Entries further
    left were written by the client and are never believed.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = trusted_proxies()
    if not _is_proxy(remote, proxies):
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    hops = [hop.strip() for hop in forwarded if hop.strip()]
    for hop in reversed(hops):
        if not _is_proxy(hop, proxies):
            return hop
    return hops[0] if hops else remote


def identities(request, extra=()):
    """What one request is counted against: its IP, its user, and `extra`."""
    found = [f"ip:{client_ip(request)}"]
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        found.append(f"user:{user.pk}")
    return found + list(extra)


def _key(scope, rate, identity, window):
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return f"rl:{scope}:{rate.period}:{digest}:{window}"


def _increment(key, timeout):
    if cache.add(key, 1, timeout):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # it expired between add() and incr()
        cache.add(key, 1, timeout)
        return 1


def hit(scope, identity, rate):
    """Count one attempt; return the seconds to wait if it is over the limit."""
    now = time.time()
    window = int(now // rate.period)
    remaining = (window + 1) * rate.period - now
    count = _increment(_key(scope, rate, identity, window), math.ceil(remaining) + 1)
    if count > rate.limit:
        return max(1, math.ceil(remaining))
    return None


def check(request, scope, rate=None, *, keys=()):
    """Count this attempt at `scope`; raise RateLimited if any counter is over.

    Every counter is counted (the IP, the logged-in user and each of `keys`, e.g.
    the username a login tries). `rate` is a Rate or a string like "10/m"; by
    default the scope's setting. A rate of "off" counts nothing.
    """
    if rate is None:
        rate = configured_rate(scope)
    elif isinstance(rate, str):
        rate = parse_rate(rate)
    if rate is None:
        return
    waits = [hit(scope, who, rate) for who in identities(request, keys)]
    waits = [wait for wait in waits if wait]
    if waits:
        logger.warning("rate limited: %s from %s", scope, client_ip(request))
        raise RateLimited(scope, max(waits))


def too_many(request, exc, template="whiteboard/rate_limited.html", context=None):
    """The HTTP 429 page for `exc`, with a Retry-After header."""
    from django.shortcuts import render  # not at import: the settings import us

    context = {
        "message": exc.message,
        "retry_after": exc.retry_after,
        **(context or {}),
    }
    response = render(request, template, context, status=exc.status)
    response["Retry-After"] = str(exc.retry_after)
    return response


def limit(scope, rate=None, methods=("POST",)):
    """Decorate a view: its `methods` requests are counted under `scope`."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method in methods:
                try:
                    check(request, scope, rate)
                except RateLimited as exc:
                    return too_many(request, exc)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
