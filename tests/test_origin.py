"""The WebSocket Origin check: scheme, host and port must all match."""

import pytest
from channels.testing import WebsocketCommunicator

from whiteboard.origin import (
    Origin,
    OriginValidator,
    origin_allowed,
    parse_origin,
    parse_origins,
    scope_is_secure,
)

HOSTS = ["127.0.0.1", "localhost", "[::1]", ".example.com"]


def allowed(origin, host="127.0.0.1:8000", secure=False, origins=()):
    return origin_allowed(
        origin,
        host_header=host,
        secure=secure,
        allowed_hosts=HOSTS,
        allowed_origins=parse_origins(origins),
    )


def test_the_servers_own_origin_is_accepted():
    assert allowed("http://127.0.0.1:8000")
    assert allowed("http://LOCALHOST:8000", host="localhost:8000")
    assert allowed("http://[::1]:8000", host="[::1]:8000")


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:8001",  # another port: another site
        "https://127.0.0.1:8000",  # another scheme
        "http://127.0.0.1",  # port 80
        "http://evil.test:8000",  # a host not in ALLOWED_HOSTS
        "null",
        "",
        "file://",
        "http://127.0.0.1:8000/path",
        "http://user@127.0.0.1:8000",
        "http://127.0.0.1:notaport",
        "ws://127.0.0.1:8000",
    ],
)
def test_any_other_origin_is_refused(origin):
    assert not allowed(origin)


def test_behind_tls_the_https_origin_on_the_default_port_is_the_servers():
    assert allowed("https://board.example.com", host="board.example.com", secure=True)
    assert allowed(
        "https://board.example.com:443", host="board.example.com", secure=True
    )
    assert not allowed(
        "http://board.example.com", host="board.example.com", secure=True
    )
    assert not allowed("https://board.example.com", host="board.example.com")


def test_a_non_standard_port_comes_from_the_host_header():
    host = "board.example.com:8443"
    assert allowed("https://board.example.com:8443", host=host, secure=True)
    assert not allowed("https://board.example.com", host=host, secure=True)


def test_a_configured_origin_is_accepted_exactly():
    origins = ["https://draw.example.org", "http://10.0.0.5:3000"]
    assert allowed("https://draw.example.org", origins=origins)
    assert allowed("http://10.0.0.5:3000", origins=origins)
    assert not allowed("http://draw.example.org", origins=origins)
    assert not allowed("http://10.0.0.5:3001", origins=origins)


def test_origins_are_parsed_to_scheme_host_and_port():
    assert parse_origin("HTTPS://Board.Example.com") == Origin(
        "https", "board.example.com", 443
    )
    assert str(parse_origin("http://[::1]:8000")) == "http://[::1]:8000"
    with pytest.raises(ValueError, match="is not an origin"):
        parse_origins(["board.example.com"])


def test_the_proxy_header_decides_https_only_when_configured():
    proxy = ("HTTP_X_FORWARDED_PROTO", "https")
    forwarded = {"headers": [(b"x-forwarded-proto", b"https")]}
    assert scope_is_secure(forwarded, proxy)
    assert not scope_is_secure(forwarded, None), "not believed unless configured"
    assert not scope_is_secure({"headers": [(b"x-forwarded-proto", b"http")]}, proxy)
    assert scope_is_secure({"headers": [], "scheme": "wss"}, None)


async def accepted_app(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})


@pytest.mark.parametrize(
    "headers, accepted",
    [
        ([(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")], True),
        ([(b"origin", b"http://127.0.0.1:9"), (b"host", b"127.0.0.1:8000")], False),
        ([(b"host", b"127.0.0.1:8000")], False),
    ],
)
async def test_the_middleware_refuses_before_the_application_runs(
    headers, accepted, settings
):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    app = OriginValidator(accepted_app)
    communicator = WebsocketCommunicator(app, "/ws/boards/x/", headers=headers)
    connected, _ = await communicator.connect(timeout=10)
    assert connected is accepted
    await communicator.disconnect()
