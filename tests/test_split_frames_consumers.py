"""Big undo results and replays reach sockets as several ops frames (PROTOCOL.md,
"Frame size"), through the hub and the paged join."""

import json

import pytest

from whiteboard.protocol.frames import FRAME_BUDGET

from .test_commit_bounds import stroke

pytestmark = pytest.mark.django_db(transaction=True)


async def raw_ops(client, count):
    """The raw `ops` frames carrying the next `count` op entries."""
    texts, seen = [], 0
    while seen < count:
        text = await client.comm.receive_from(timeout=10)
        frame = json.loads(text)
        if frame["type"] == "ops":
            texts.append(text)
            seen += len(frame["ops"])
    return texts


def check_split(texts, first, last):
    assert len(texts) > 1
    biggest = max(len(json.dumps(e)) for t in texts for e in json.loads(t)["ops"])
    assert all(len(t.encode()) <= FRAME_BUDGET + biggest + 100 for t in texts)
    seqs = [e["seq"] for t in texts for e in json.loads(t)["ops"]]
    assert seqs == list(range(first, last + 1))


async def test_an_undo_of_a_big_clear_reaches_every_socket_in_several_frames(
    board, connect
):
    ann = await connect()
    bob = await connect()
    for i in range(15):
        await ann.send(
            {"type": "add", "cid": f"cid-stroke-{i:04d}", "element": stroke(f"s{i}")}
        )
        await ann.recv_ops(1, timeout=10)
    await ann.send({"type": "clear", "cid": "cid-clear-0001"})
    await ann.recv_ops(1)
    await ann.send({"type": "undo", "cid": "cid-undo-00001"})
    check_split(await raw_ops(ann, 15), 17, 31)
    check_split(await raw_ops(bob, 31), 1, 31)

    late = await connect("/ws/boards/team/?since=16", state=False)
    check_split(await raw_ops(late, 15), 17, 31)
    await late.nothing()
