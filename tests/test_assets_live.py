"""Uploads on a live daphne, as the page sends them (the csrftoken cookie in an
X-CSRFToken header): images are decoded in a bounded image worker process,
whose queue and death end in 503 `busy`, while the boards' ops flow."""

import asyncio
import contextlib
import io
import json
import os
import signal
import uuid
from asyncio import to_thread
from pathlib import Path

import pytest
from PIL import Image

from tests.live import add_frame, read_state
from tests.livehttp import Browser

# The image worker is the same whatever the database and channel layer: once.
pytestmark = [pytest.mark.live, pytest.mark.standalone]


def large_png():
    """12 megapixels in 40 kB: seconds of decoding and encoding."""
    picture = Image.linear_gradient("L").resize((4000, 3000)).convert("RGB")
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def upload(browser, slug, data):
    """A multipart POST as the page sends it; (status, decoded JSON)."""
    browser.get("/")  # the csrftoken cookie, as the board page has it
    boundary = uuid.uuid4().hex
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "X-CSRFToken": browser.cookies["csrftoken"],
        "Origin": browser.server.origin,
    }
    status, _, text = browser.request("POST", f"/b/{slug}/assets/", body, headers)
    return status, json.loads(text)


async def committed(ws, cid):
    """Wait for the op of `cid` to come back in `ops` (its confirmation)."""
    async with asyncio.timeout(60):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "ops" and any(e["cid"] == cid for e in frame["ops"]):
                return
            assert frame["type"] in {"ops", "joined", "left", "cursors"}, frame


def image_workers(pid):
    """The pids of the image worker processes of the server `pid`: its
    children started by multiprocessing's spawn (not its resource tracker)."""
    children = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        # A thread (or a child, below) may end while it is read.
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            children |= set((task / "children").read_text().split())
    found = []
    for child in children:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if any(b"spawn_main" in part for part in command):
                found.append(int(child))
    return found


def small_png():
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(out, "PNG")
    return out.getvalue()


async def test_uploads_wait_for_a_bounded_image_worker_and_ops_flow_meanwhile(
    start_server, live_db
):
    """One image worker and room for one upload: a second large upload at
    the same time is answered 503 `busy`; a worker that dies (killed for its
    memory) costs its upload a 503 and is replaced; the board's ops are
    committed all along."""
    # Each op is sent once the previous one came back, with no pause: the
    # rate limit is raised so that this pace is never refused.
    server = await to_thread(
        start_server,
        WHITEBOARD_IMAGE_WORKERS="1",
        WHITEBOARD_IMAGE_QUEUE="1",
        WHITEBOARD_OPS_PER_SECOND="10000",
    )
    slug = await to_thread(live_db.create_board)  # public: visitors may draw
    data = await to_thread(large_png)
    loop = asyncio.get_running_loop()
    async with server.open(slug) as ws:
        await read_state(ws)
        # A first, small upload starts the worker.
        status, _ = await to_thread(upload, Browser(server), slug, small_png())
        assert status == 201
        assert len(image_workers(server.process.pid)) == 1

        started = loop.time()
        both = asyncio.gather(
            to_thread(upload, Browser(server), slug, data),
            to_thread(upload, Browser(server), slug, data),
        )
        gaps, n, last = [], 0, loop.time()
        while not both.done():
            await ws.send(add_frame(f"during-{n}"))
            await committed(ws, f"cid0000-during-{n}")
            now = loop.time()
            gaps.append(now - last)
            last, n = now, n + 1
        answers = sorted(await both, key=lambda answer: answer[0])
        took = loop.time() - started

        (ok, stored), (refused, error) = answers
        assert ok == 201 and (stored["w"], stored["h"]) == (4000, 3000)
        assert (refused, error["error"]) == (503, "busy"), error
        assert "try again" in error["message"]
        assert n >= 3, f"{n} ops during an upload of {took:.1f} s"
        assert max(gaps) < took / 3, (max(gaps), took)

        # The worker killed while it decodes: that upload is refused, the
        # next one gets a new worker.
        (worker,) = image_workers(server.process.pid)
        sending = asyncio.ensure_future(to_thread(upload, Browser(server), slug, data))
        await ws.send(add_frame("kill-marker"))
        await committed(ws, "cid0000-kill-marker")
        os.kill(worker, signal.SIGKILL)
        status, error = await sending
        assert (status, error["error"]) == (503, "busy"), error
        status, _ = await to_thread(upload, Browser(server), slug, small_png())
        assert status == 201
        (replacement,) = image_workers(server.process.pid)
        assert replacement != worker
