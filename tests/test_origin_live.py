"""The Origin check on a live daphne: only the server's own origin opens a socket."""

import pytest
from websockets.exceptions import InvalidStatus

from tests.live import read_state

pytestmark = pytest.mark.live


async def test_daphne_accepts_only_its_own_scheme_host_and_port(start_server, live_db):
    server = start_server()
    slug = live_db.create_board()
    async with server.open(slug, origin=f"http://127.0.0.1:{server.port}") as ws:
        welcome, _ = await read_state(ws)
        assert welcome["board"]["slug"] == slug
    for origin in (
        f"http://127.0.0.1:{server.port + 1}",
        f"https://127.0.0.1:{server.port}",
        "http://127.0.0.1",
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with server.open(slug, origin=origin):
                pass
        assert refused.value.response.status_code == 403, origin


async def test_a_configured_origin_is_accepted_on_daphne(start_server, live_db):
    server = start_server(WHITEBOARD_ALLOWED_ORIGINS="https://draw.example.org")
    slug = live_db.create_board()
    async with server.open(slug, origin="https://draw.example.org") as ws:
        welcome, _ = await read_state(ws)
        assert welcome["type"] == "welcome"
