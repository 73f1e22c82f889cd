"""The pieces of the operator's view that need no server: JSON log lines, the
metrics' label rules and read-back, and who may scrape /metrics."""

import json
import logging
import sys

import pytest
from channels.testing import HttpCommunicator
from django.test import override_settings

from config.log_format import JsonFormatter, log_fields
from config.log_redaction import RedactSecrets
from whiteboard import metrics
from whiteboard.operations import OperationsEndpoints, metrics_allowed


def formatted(message, *args, exc_info=None, **extra):
    record = logging.LogRecord(
        "whiteboard.test", logging.INFO, __file__, 1, message, args, exc_info
    )
    record.__dict__.update(extra)
    RedactSecrets().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_a_json_line_has_the_basics_and_the_fields_given():
    line = formatted(
        "Connection %s closed", "abc", **log_fields(board="b1", sid="abc", user=None)
    )
    assert line["message"] == "Connection abc closed"
    assert line["level"] == "INFO" and line["logger"] == "whiteboard.test"
    assert line["time"].endswith("+00:00")
    assert line["board"] == "b1" and line["sid"] == "abc" and line["user"] is None
    assert "cid" not in line  # absent, not null, when it does not apply


def test_a_json_line_masks_share_keys_everywhere_and_keeps_a_traceback_in_one_field():
    try:
        raise ValueError("failed at /b/x/?key=secret-one")
    except ValueError:
        exc_info = sys.exc_info()
    line = formatted(
        "GET %s",
        "/b/x/?key=secret-two",
        exc_info=exc_info,
        request="/b/x/?key=secret-three",
    )
    text = json.dumps(line)
    assert "secret" not in text
    assert line["message"] == "GET /b/x/?key=[redacted]"
    assert line["exception"].startswith("Traceback")
    assert "ValueError" in line["exception"]


def test_log_fields_keeps_only_the_known_fields():
    assert log_fields(board="b", user=None, cid=None, password="x") == {
        "board": "b",
        "user": None,
    }


def sample(name, **labels):
    found = [
        s.value
        for family in metrics.REGISTRY.collect()
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return sum(found)


def test_label_values_come_from_closed_sets():
    """A client chooses its close code and could send any text as a code:
    neither becomes a new label value."""
    before = sample("whiteboard_closes_total", code="other", by="client")
    metrics.closed(4999, by="client")
    assert sample("whiteboard_closes_total", code="other", by="client") == before + 1
    before = sample("whiteboard_op_refusals_total", code="other")
    metrics.refused("Robert'); DROP TABLE")
    assert sample("whiteboard_op_refusals_total", code="other") == before + 1


def test_snapshot_reads_back_what_was_counted():
    before = metrics.snapshot()
    metrics.committed(["add", "add", "delete"])
    metrics.closed(4413, by="server")
    metrics.COMMIT_SECONDS.observe(0.003)
    after = metrics.snapshot()
    assert after.ops_committed["add"] - before.ops_committed.get("add", 0) == 2
    assert after.closes[("4413", "server")] - before.closes.get(("4413", "server"), 0)
    assert after.commit.count == before.commit.count + 1


def test_histogram_quantiles_are_bucket_bounds():
    histo = metrics.Histo(buckets={0.01: 50, 0.1: 99, 1.0: 100, float("inf"): 100})
    histo.count = 100
    assert histo.quantile(0.5) == 0.01
    assert histo.quantile(0.99) == 0.1
    assert histo.quantile(1.0) == 1.0
    assert metrics.Histo().quantile(0.5) is None


def scope(client, forwarded=None):
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"type": "http", "client": (client, 5000), "headers": headers}


@override_settings(WHITEBOARD_METRICS_ALLOW=["127.0.0.1", "10.1.0.0/16"])
def test_metrics_are_allowed_by_address_and_network():
    assert metrics_allowed(scope("127.0.0.1"))[0]
    assert metrics_allowed(scope("10.1.200.3"))[0]
    refused = (False, "not in WHITEBOARD_METRICS_ALLOW")
    assert metrics_allowed(scope("10.2.0.1")) == refused
    assert not metrics_allowed(scope(""))[0]


@override_settings(
    WHITEBOARD_METRICS_ALLOW=["127.0.0.1"], WHITEBOARD_TRUSTED_PROXIES=[]
)
def test_a_scrape_forwarded_by_an_untrusted_proxy_is_refused():
    allowed, why = metrics_allowed(scope("127.0.0.1", forwarded="127.0.0.1"))
    assert not allowed and "WHITEBOARD_TRUSTED_PROXIES" in why


async def not_reached(scope, receive, send):
    raise AssertionError("the operator's paths never reach the application")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_the_operators_paths_answer_get_only(path):
    app = OperationsEndpoints(not_reached)
    answer = await HttpCommunicator(app, "POST", path).get_response()
    assert answer["status"] == 405
    assert dict(answer["headers"])[b"allow"] == b"GET, HEAD"


async def test_healthz_answers_ok_without_the_application():
    answer = await HttpCommunicator(
        OperationsEndpoints(not_reached), "GET", "/healthz"
    ).get_response()
    assert (answer["status"], answer["body"]) == (200, b"ok\n")


async def test_other_paths_go_to_the_application():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    answer = await HttpCommunicator(
        OperationsEndpoints(app), "GET", "/healthz/"
    ).get_response()
    assert answer["status"] == 204
