"""The WebSocket Origin check: scheme, host and port, matched exactly.

A browser names the page that opens a WebSocket in its `Origin` header, and
nothing else stops another site's page from opening a socket with the user's
cookies (cross-site WebSocket hijacking). An Origin is accepted when it is

- the server's own origin: its host is in ALLOWED_HOSTS, and its scheme and
  port are the ones the request came in on (ws is http, wss is https; behind a
  proxy that terminates TLS, SECURE_PROXY_SSL_HEADER says https; the port is
  the Host header's, or the scheme's default when it names none), or
- one of WHITEBOARD_ALLOWED_ORIGINS, compared exactly.

Anything else, a missing Origin included, is refused before authentication or
routing run: the handshake is answered with HTTP 403.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """A scheme, a host (lower case, IPv6 in brackets) and a port, all explicit."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        default = DEFAULT_PORTS[self.scheme] == self.port
        return f"{self.scheme}://{self.host}" + ("" if default else f":{self.port}")


def parse_origin(text: str) -> Origin | None:
    """`http://Example.com` -> Origin("http", "example.com", 80); None if not one.

    An origin is a scheme and an authority and nothing more: a path, a query,
    user info, "null" or an unknown scheme make it no origin at all.
    """
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or "@" in parts.netloc:
        return None
    host, _ = split_domain_port(parts.netloc)
    if not host:
        return None
    return Origin(scheme, host, port or DEFAULT_PORTS[scheme])


def parse_origins(entries: Iterable[str]) -> frozenset[Origin]:
    """The configured list, each entry an origin; ValueError names a bad one."""
    found = set()
    for entry in entries:
        origin = parse_origin(entry)
        if origin is None:
            raise ValueError(
                f"{entry!r} is not an origin: write scheme://host[:port], "
                "e.g. https://board.example.com"
            )
        found.add(origin)
    return frozenset(found)


def request_origin(host_header: str, secure: bool) -> Origin | None:
    """The origin a request came in on, from its Host header and its scheme."""
    scheme = "https" if secure else "http"
    host, port = split_domain_port(host_header)
    if not host:
        return None
    try:
        number = int(port) if port else DEFAULT_PORTS[scheme]
    except ValueError:
        return None
    return Origin(scheme, host, number)


def origin_allowed(
    origin: str,
    *,
    host_header: str | None,
    secure: bool,
    allowed_hosts: Sequence[str],
    allowed_origins: frozenset[Origin] = frozenset(),
) -> bool:
    """Whether a WebSocket whose handshake says `origin` may go on (pure).

    Without a Host header only the scheme and host are matched. No browser
    sends a handshake without one (nor does daphne accept it: autobahn refuses
    it with 400), and the check only protects browsers: any other client can
    write whatever Origin it likes. Only in-process test clients omit it.
    """
    claimed = parse_origin(origin)
    if claimed is None:
        return False
    if claimed in allowed_origins:
        return True
    scheme = "https" if secure else "http"
    if host_header is not None:
        own = request_origin(host_header, secure)
        if own is None or (claimed.scheme, claimed.port) != (own.scheme, own.port):
            return False
    elif claimed.scheme != scheme:
        return False
    return validate_host(claimed.host, allowed_hosts)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def scope_is_secure(
    scope: dict[str, Any], proxy_header: tuple[str, str] | None
) -> bool:
    """wss, or https according to SECURE_PROXY_SSL_HEADER when it is set.

    As Django does for HTTP: when the setting names a header, that header
    decides, and a request without it is not secure.
    """
    if proxy_header:
        name, expected = proxy_header
        header = name.removeprefix("HTTP_").replace("_", "-").lower().encode()
        value = _header(scope, header)
        if value is not None:
            return value.split(",", 1)[0].strip() == expected
    return scope.get("scheme", "ws") == "wss"


async def deny(receive: Any, send: Any) -> None:
    """Refuse the handshake: a close before the accept is HTTP 403 to the client.

    Without a consumer, so that a refusal needs no channel layer.
    """
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})


class OriginValidator:
    """ASGI middleware for the websocket stack: refuses (403) a foreign Origin."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not self.allows(scope):
            logger.warning(
                "refused a WebSocket from origin %r", _header(scope, b"origin")
            )
            return await deny(receive, send)
        return await self.application(scope, receive, send)

    @staticmethod
    def allows(scope: dict[str, Any]) -> bool:
        origin = _header(scope, b"origin")
        if origin is None:
            return False
        return origin_allowed(
            origin,
            host_header=_header(scope, b"host"),
            secure=scope_is_secure(scope, settings.SECURE_PROXY_SSL_HEADER),
            allowed_hosts=settings.ALLOWED_HOSTS,
            allowed_origins=parse_origins(settings.WHITEBOARD_ALLOWED_ORIGINS),
        )
