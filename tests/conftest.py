import pytest
from channels.testing import WebsocketCommunicator

from config.asgi import application
from whiteboard import services

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


@pytest.fixture
def board(db):
    return services.board_create(slug="team", title="Team board")


class Client:
    """A WebsocketCommunicator that reads the welcome and state frames for you."""

    def __init__(self, path, headers=None):
        self.comm = WebsocketCommunicator(
            application, path, headers=headers or [ORIGIN]
        )
        self.welcome = None
        self.state = []

    async def open(self):
        connected, _ = await self.comm.connect()
        assert connected
        self.welcome = await self.comm.receive_json_from()
        return self

    async def open_board(self):
        await self.open()
        assert self.welcome["type"] == "welcome", self.welcome
        while True:
            frame = await self.comm.receive_json_from()
            self.state.append(frame)
            if frame["type"] == "ops" or not frame.get("more", False):
                return self

    async def send(self, frame):
        await self.comm.send_json_to(frame)

    async def recv(self, timeout=2):
        return await self.comm.receive_json_from(timeout=timeout)

    async def recv_type(self, kind, timeout=2):
        """Next frame of `kind`, skipping presence and cursor noise."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == kind:
                return frame
            assert frame["type"] in {"joined", "left", "cursors", "draft"}, frame

    async def nothing(self):
        assert await self.comm.receive_nothing(timeout=0.2)

    async def close(self):
        await self.comm.disconnect()


@pytest.fixture
async def connect():
    opened = []

    async def open_client(path="/ws/boards/team/", headers=None, state=True):
        client = Client(path, headers)
        opened.append(client)
        return await (client.open_board() if state else client.open())

    yield open_client
    for client in opened:
        await client.close()
