"""The operator's view of a live daphne: /metrics, /healthz, /readyz, JSON logs.

Real servers on loopback, real clients; Redis and PostgreSQL outages are real
servers of the test's own, stopped and started again.
"""

import asyncio
import http.client
import json
import time
from asyncio import to_thread

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.live import (
    Database,
    PostgresServer,
    RedisServer,
    add_frame,
    closed_with,
    read_state,
)

pytestmark = pytest.mark.live

MAX_FRAME = 262144


def get(server, path, headers=None):
    """(status, content type, body) of one GET."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.getheader("Content-Type"), answer.read()
    finally:
        conn.close()


class Metrics:
    """One scrape of /metrics, parsed by prometheus_client's own parser."""

    def __init__(self, text):
        self.samples = [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name, **labels):
        """The sum of the samples of `name` whose labels include `labels`."""
        return sum(
            value
            for found, their, value in self.samples
            if found == name and all(their.get(k) == str(v) for k, v in labels.items())
        )


async def scrape(server):
    status, content_type, body = await to_thread(get, server, "/metrics")
    assert status == 200, body
    assert content_type.startswith("text/plain; version=")
    return Metrics(body.decode())


async def scraped_until(server, condition, what, timeout=10):
    """Scrape until `condition(metrics)` holds; the server updates its numbers
    when its side of a close or commit has run, which a client sees first."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = await scrape(server)
        if condition(metrics):
            return metrics
        if time.monotonic() > deadline:
            raise AssertionError(f"/metrics never showed {what}")
        await asyncio.sleep(0.05)


async def committed(ws, cids):
    """Read frames until every one of `cids` came back in an `ops` frame (the
    sender's sign that its op is durable)."""
    waiting = set(cids)
    async with asyncio.timeout(10):
        while waiting:
            frame = json.loads(await ws.recv())
            if frame["type"] == "ops":
                waiting -= {op["cid"] for op in frame["ops"]}


async def error_frame(ws):
    async with asyncio.timeout(10):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "error":
                return frame


# -- metrics ---------------------------------------------------------------------


async def test_metrics_move_when_ops_are_committed_refused_and_closed(
    start_server, live_db
):
    server = await to_thread(start_server)
    slug = await to_thread(live_db.create_board)
    before = await scrape(server)
    assert before.value("whiteboard_connections") == 0
    assert before.value("process_resident_memory_bytes") > 0
    async with server.open(slug) as ws, server.open(slug) as quitter:
        await read_state(ws)
        await read_state(quitter)
        # Each connection's waiting bytes are sampled at the first upkeep
        # tick; they read everything, so the samples are in the 0 bucket.
        during = await scraped_until(
            server,
            lambda m: (
                m.value("whiteboard_connections") == 2
                and m.value("whiteboard_send_buffer_bytes_count") >= 1
            ),
            "two connections and their send buffers",
        )
        assert during.value("whiteboard_boards_active") == 1
        assert during.value("whiteboard_send_buffer_bytes_bucket", le="0.0") >= 1
        cids = [f"metrics-cid-{n}" for n in range(3)]
        for n, cid in enumerate(cids):
            await ws.send(add_frame(f"m{n}", cid=cid))
        await committed(ws, cids)
        # An update of an element that does not exist: refused, socket open.
        await ws.send(
            json.dumps(
                {"type": "update", "cid": "metrics-bad", "id": "nope", "set": {"x": 1}}
            )
        )
        refusal = await error_frame(ws)
        await quitter.close()
        # A frame over the limit closes with 1009.
        await ws.send("x" * (MAX_FRAME + 1))
        code, _ = await closed_with(ws)
        assert code == 1009
    after = await scraped_until(
        server, lambda m: m.value("whiteboard_connections") == 0, "no connection"
    )

    def moved(name, **labels):
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved("whiteboard_ops_committed_total", kind="add") == 3
    assert moved("whiteboard_op_refusals_total", code=refusal["code"]) == 1
    assert moved("whiteboard_closes_total", code=1009, by="server") == 1
    assert moved("whiteboard_closes_total", code=1000, by="client") == 1
    assert moved("whiteboard_broadcast_seconds_count") == 3
    assert moved("whiteboard_batch_ops_sum") == 4  # the refused update too
    assert moved("whiteboard_commit_seconds_count") >= 1
    assert after.value("whiteboard_boards_active") == 0
    assert moved("whiteboard_database_errors_total") == 0


async def test_metrics_of_two_daphnes_sharing_a_directory_answer_for_both(
    start_server, live_db, tmp_path
):
    shared = tmp_path / "metrics"
    first = await to_thread(start_server, WHITEBOARD_METRICS_DIR=shared)
    second = await to_thread(start_server, WHITEBOARD_METRICS_DIR=shared)
    slug = await to_thread(live_db.create_board)
    async with first.open(slug) as one, second.open(slug) as two:
        await read_state(one)
        await read_state(two)
        await two.send(add_frame("from-two", cid="two-cid-0"))
        await committed(two, ["two-cid-0"])
        # The second process counts the op once it has broadcast it, which its
        # client may see first: both numbers are waited for.
        both = await scraped_until(
            first,
            lambda m: (
                m.value("whiteboard_connections") == 2
                and m.value("whiteboard_ops_committed_total", kind="add") == 1
            ),
            "the connections of both processes and the second one's op",
        )
        pids = {
            labels["pid"]
            for name, labels, _ in both.samples
            if name == "process_resident_memory_bytes"
        }
        assert pids == {str(first.process.pid), str(second.process.pid)}
        # A process killed outright stops counting among the open connections;
        # what it committed still counts.
        await to_thread(second.kill)
        left = await scraped_until(
            first,
            lambda m: m.value("whiteboard_connections") == 1,
            "the killed process's connection gone",
        )
    assert left.value("whiteboard_ops_committed_total", kind="add") == 1
    assert {
        labels["pid"]
        for name, labels, _ in left.samples
        if name == "process_resident_memory_bytes"
    } == {str(first.process.pid)}


async def test_metrics_are_refused_to_addresses_not_allowed(start_server):
    elsewhere = await to_thread(start_server, WHITEBOARD_METRICS_ALLOW="10.0.0.0/8")
    status, _, body = await to_thread(get, elsewhere, "/metrics")
    assert status == 403
    assert b"whiteboard_" not in body
    # The health endpoints stay open to everyone.
    assert (await to_thread(get, elsewhere, "/healthz"))[0] == 200

    # Behind a trusted proxy, the client it names is what counts.
    proxied = await to_thread(
        start_server,
        WHITEBOARD_TRUSTED_PROXIES="127.0.0.1",
        WHITEBOARD_METRICS_ALLOW="203.0.113.9",
    )
    allowed = {"X-Forwarded-For": "203.0.113.9"}
    assert (await to_thread(get, proxied, "/metrics", allowed))[0] == 200
    other = {"X-Forwarded-For": "198.51.100.7"}
    assert (await to_thread(get, proxied, "/metrics", other))[0] == 403
    assert (await to_thread(get, proxied, "/metrics"))[0] == 403  # 127.0.0.1

    # A proxy that is not trusted: whoever it names, the client is unknown.
    plain = await to_thread(start_server)
    assert (await to_thread(get, plain, "/metrics"))[0] == 200
    status, _, _ = await to_thread(get, plain, "/metrics", {"X-Forwarded-For": "::1"})
    assert status == 403


# -- health --------------------------------------------------------------------------


async def readiness(server):
    status, content_type, body = await to_thread(get, server, "/readyz")
    assert content_type == "application/json"
    return status, json.loads(body)


async def ready_until(server, wanted, timeout):
    """The /readyz answer once its status is `wanted`; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = await readiness(server)
        if status == wanted:
            return body
        assert time.monotonic() < deadline, f"/readyz stayed {status}: {body}"
        await asyncio.sleep(0.05)


@pytest.mark.standalone
async def test_readyz_follows_a_redis_outage_within_five_seconds(
    start_server, tmp_path
):
    redis = await to_thread(RedisServer, tmp_path)
    try:
        server = await to_thread(start_server, redis_url=redis.url)
        assert await readiness(server) == (200, {"status": "ready"})
        await to_thread(redis.stop)
        down = await ready_until(server, 503, timeout=5)
        assert down["status"] == "unavailable"
        assert set(down["failing"]) == {"channel_layer"}
        # Liveness is not readiness: the process itself is fine.
        status, _, body = await to_thread(get, server, "/healthz")
        assert (status, body) == (200, b"ok\n")
        await to_thread(redis.start)
        assert await ready_until(server, 200, timeout=5) == {"status": "ready"}
        metrics = await scrape(server)
        assert metrics.value("whiteboard_channel_layer_errors_total", operation="check")
    finally:
        await to_thread(redis.stop)


@pytest.mark.standalone
async def test_readyz_follows_a_database_outage(start_server, tmp_path):
    pg = await to_thread(PostgresServer)
    try:
        database = await to_thread(Database, tmp_path, pg.url)
        server = await to_thread(start_server, database=database)
        assert (await readiness(server))[0] == 200
        await to_thread(pg.halt)
        down = await ready_until(server, 503, timeout=5)
        assert set(down["failing"]) == {"database"}
        # The reason is short and names no password or connection string.
        assert "whiteboard@" not in down["failing"]["database"]
        assert (await to_thread(get, server, "/healthz"))[0] == 200
        await to_thread(pg.start)
        await ready_until(server, 200, timeout=5)
        metrics = await scrape(server)
        assert metrics.value("whiteboard_database_errors_total") >= 1
    finally:
        await to_thread(pg.stop)


# -- structured logs -------------------------------------------------------------------


async def test_json_logs_give_one_object_per_line_with_the_connection_fields(
    start_server, live_db
):
    server = await to_thread(start_server, WHITEBOARD_LOG_FORMAT="json")
    slug = await to_thread(live_db.create_board)
    # A share key in a URL must not reach the log.
    await to_thread(get, server, f"/b/{slug}/?key=do-not-log-this-key")
    async with server.open(slug) as ws:
        welcome, _ = await read_state(ws)
        sid = welcome["you"]["sid"]
        await ws.send("x" * (MAX_FRAME + 1))
        assert (await closed_with(ws))[0] == 1009
    async with server.open("no-such-board") as missing:
        assert (await closed_with(missing))[0] == 4404
    assert await to_thread(server.stop) == 0

    text = server.logs()
    assert "do-not-log-this-key" not in text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    for line in lines:
        assert {"time", "level", "logger", "message", "pid"} <= set(line), line
    mine = [line for line in lines if line.get("sid") == sid]
    opened = [line for line in mine if "opened" in line["message"]]
    closed = [line for line in mine if "closed" in line["message"]]
    assert len(opened) == 1 and len(closed) == 1, mine
    assert opened[0]["level"] == "INFO"
    assert opened[0]["board"] == slug and opened[0]["user"] is None
    assert closed[0]["close_code"] == 1009 and closed[0]["by"] == "server"
    refused = [line for line in lines if line.get("board") == "no-such-board"]
    assert len(refused) == 1, refused
    assert refused[0]["close_code"] == 4404
    assert refused[0]["error_code"] == "not_found"
    access = [line for line in lines if line["logger"] == "whiteboard.access"]
    assert any("[redacted]" in line["request"] for line in access)
