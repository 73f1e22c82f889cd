import uuid

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client as HttpClient

from config.asgi import application
from whiteboard import services
from whiteboard.realtime import process

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
# Frames that may arrive between any two others: presence and volatile traffic.
NOISE = frozenset({"joined", "left", "cursors", "draft"})


@pytest.fixture
def board(db):
    return services.board_create(slug="team", title="Team board")


class Client:
    """A WebsocketCommunicator that reads the welcome and state frames for you."""

    def __init__(self, path, headers=None):
        self.comm = WebsocketCommunicator(
            application, path, headers=headers if headers is not None else [ORIGIN]
        )
        self.started = False
        self.welcome = None
        self.state = []
        self.skipped = []  # noise frames that recv_type() passed over

    async def handshake(self):
        """(accepted, subprotocol or close code), as the communicator reports it."""
        self.started = True
        return await self.comm.connect()

    async def open(self):
        connected, _ = await self.handshake()
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

    @property
    def sid(self):
        return self.welcome["you"]["sid"]

    @property
    def name(self):
        return self.welcome["you"]["name"]

    async def send(self, frame):
        await self.comm.send_json_to(frame)

    async def send_text(self, text):
        await self.comm.send_to(text_data=text)

    async def recv(self, timeout=2):
        return await self.comm.receive_json_from(timeout=timeout)

    async def recv_type(self, kind, timeout=2):
        """Next frame of `kind`, skipping presence and cursor noise."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == kind:
                return frame
            assert frame["type"] in NOISE, frame
            self.skipped.append(frame)

    async def recv_ops(self, count, timeout=2):
        """The next `count` op entries, from however many `ops` frames carry them."""
        ops = []
        while len(ops) < count:
            ops.extend((await self.recv_type("ops", timeout))["ops"])
        assert len(ops) == count, ops
        return ops

    async def recv_all(self, count, timeout=2, skip=NOISE):
        """The next `count` frames that are not presence or cursor noise."""
        frames = []
        while len(frames) < count:
            frame = await self.recv(timeout)
            (self.skipped if frame["type"] in skip else frames).append(frame)
        return frames

    async def closed(self, timeout=2):
        """Read frames up to the server's close; return (close code, frames before)."""
        before = []
        while True:
            message = await self.comm.receive_output(timeout)
            if message["type"] == "websocket.close":
                return message.get("code"), before
            assert message["type"] == "websocket.send", message
            before.append(message)

    async def nothing(self, timeout=0.2):
        assert await self.comm.receive_nothing(timeout=timeout)

    async def quiet(self, timeout=0.2):
        """Nothing but presence and cursor noise arrives within `timeout`."""
        while not await self.comm.receive_nothing(timeout=timeout):
            frame = await self.recv()
            assert frame["type"] in NOISE, frame
            self.skipped.append(frame)

    async def close(self):
        # A communicator never started, or whose application already ended (it
        # raised), has nothing left to disconnect.
        if self.started and not self.comm.future.done():
            await self.comm.disconnect()


@pytest.fixture
async def connect():
    opened = []

    async def open_client(path="/ws/boards/team/", headers=None, state=True):
        client = Client(path, headers)
        opened.append(client)
        return await (client.open_board() if state else client.open())

    open_client.clients = opened
    yield open_client
    for client in opened:
        await client.close()
    # Every room task ends with the test's event loop (the channel layer outlives
    # the loop, and a pending receive would hold its locks).
    await process.current().close()
    # channels' communicator turns close_old_connections() into a no-op while it
    # waits for output, so a worker thread may still hold a connection: one that
    # would keep PostgreSQL from dropping the test database.
    await sync_to_async(connections.close_all)()


@pytest.fixture
def new_client(connect):
    """A Client registered for teardown but not yet connected (for refused ones)."""

    def make(path="/ws/boards/team/", headers=None):
        client = Client(path, headers)
        connect.clients.append(client)
        return client

    return make


@pytest.fixture
def make_user(db):
    def make(username, **extra):
        return get_user_model().objects.create_user(
            username=username, password="not-used-pw-123", **extra
        )

    return make


@pytest.fixture
def owner(make_user):
    """olga, a registered user, to own boards (a module that needs more of her
    defines its own)."""
    return make_user("olga")


def session_headers(user):
    """Headers of a browser logged in as `user`: Origin and a real session cookie."""
    http = HttpClient()
    http.force_login(user)
    cookie = f"sessionid={http.cookies['sessionid'].value}"
    return [ORIGIN, (b"cookie", cookie.encode())]


@pytest.fixture
def login():
    return session_headers


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Each test gets a channel layer of its own, as each server process has.

    Every test runs its own event loop, and channels_redis binds its receive
    locks and connections to the loop that first used them: a lock still held
    when one test's loop ended made every later receive fail ("bound to a
    different event loop").
    """
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def isolated_cache(settings):
    """Each test counts its rate limits in a cache namespace of its own."""
    prefix = f"test-{uuid.uuid4().hex}"
    cache = {**settings.CACHES["default"], "KEY_PREFIX": prefix}
    if cache["BACKEND"].endswith("LocMemCache"):
        cache["LOCATION"] = prefix
    settings.CACHES = {"default": cache}


@pytest.fixture(autouse=True)
def no_careful_boards():
    """Board ids come back after a test's rollback: which boards a process
    commits read-first (whiteboard.commits.careful) must not outlive a test."""
    from whiteboard import commits

    commits.careful.clear()
    yield
    commits.careful.clear()
