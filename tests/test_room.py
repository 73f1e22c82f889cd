"""whiteboard.realtime.room: batching follows the database, with no timer.

The real Room, Process and database; the one thing the test holds in its hand
is when each transaction may start (a gate before the real group commit).
"""

import asyncio

import pytest
from channels.db import database_sync_to_async

from whiteboard import services
from whiteboard.realtime import process as process_module
from whiteboard.realtime.process import Process

from .test_services import ANN, add, rect

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


class Member:
    """A connection as the room sees it, keeping what the room tells it."""

    sid = "sid-ann"

    def __init__(self):
        self.outcomes = {}
        self.seqs = []

    def on_ops(self, frame):
        self.seqs.extend(range(frame.first, frame.last + 1))

    def on_event(self, event):
        pass

    def on_outcome(self, request, outcome):
        self.outcomes[request.cid] = outcome

    def abort(self, code):
        raise AssertionError(f"aborted with {code}")

    def tick(self, now):
        pass

    def presence(self):
        return None

    def you(self):
        return {"sid": self.sid, "name": "Ann", "color": "#000000"}

    async def shut_down(self):
        pass


async def until(condition, turns=200):
    """Let the event loop run (no clock time) until `condition()` holds."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held within the loop turns given")


@pytest.fixture
def gated(monkeypatch, settings):
    """Each group commit waits for the test to open its gate, then commits.

    The in-memory channel layer, in both test passes: with Redis, publishing
    the committed frame is a network round trip between the two commits,
    which this test does not count in loop turns.
    """
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    }
    real = database_sync_to_async(services.ops_commit_boards)
    calls = []

    async def commit_boards(*, batches):
        gate = asyncio.get_running_loop().create_future()
        committed = asyncio.Event()
        cids = [r.cid for _, requests, _ in batches for r in requests]
        calls.append((cids, gate, committed))
        await gate
        try:
            return await real(batches=batches)
        finally:
            committed.set()

    monkeypatch.setattr(process_module, "commit_boards", commit_boards)
    return calls


async def test_a_batch_is_what_arrived_during_the_last_commit(gated):
    board = await database_sync_to_async(services.board_create)(
        slug="room", title="Room"
    )
    limits = services.current_limits()
    process = Process()
    room = process.room(board.pk, board.slug, limits)
    member = Member()
    room.join(member)
    room.synced(0)
    first, second, third = (add(rect(e), author=ANN) for e in "abc")
    room.submit(first, member)
    # A quiet board: the op goes to the database without waiting for a timer.
    await until(lambda: len(gated) == 1)
    assert gated[0][0] == [first.cid]
    room.submit(second, member)
    room.submit(third, member)
    gated[0][1].set_result(None)
    await asyncio.wait_for(gated[0][2].wait(), 10)
    # The next commit starts as soon as the last has ended, with all that came.
    await until(lambda: len(gated) == 2)
    assert gated[1][0] == [second.cid, third.cid]
    gated[1][1].set_result(None)
    await asyncio.wait_for(room.idle.wait(), 10)
    seqs = {cid: (o.first, o.last) for cid, o in member.outcomes.items()}
    assert seqs == {first.cid: (1, 1), second.cid: (2, 2), third.cid: (3, 3)}
    assert member.seqs == [1, 2, 3]
    room.leave(member)
