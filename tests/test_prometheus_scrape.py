"""An operator following docs/operations.md: a real Prometheus scrapes one of
two daphnes that share WHITEBOARD_METRICS_DIR and sees both.

The scrape job is the one in the guide's ```yaml block (only its target and
interval are changed), and the rules are docs/alerts.yml, so the guide, the
rules and the server cannot drift apart unnoticed.
"""

import json
import re
import shutil
import time
import urllib.parse
import urllib.request
from asyncio import to_thread

import pytest

from tests.live import free_port, read_state, start_process
from tests.test_alert_rules import RULES, alert_rules, docs_block, docs_scrape_config

pytestmark = [pytest.mark.live, pytest.mark.standalone]

READY = b"Server is ready to receive web requests."
DEADLINE = 15


class Prometheus:
    """/usr/bin/prometheus on a free loopback port with a config of the test's."""

    def __init__(self, tmp_path, config):
        binary = shutil.which("prometheus")
        assert binary, "prometheus is required: apt-get install prometheus"
        self.port = free_port()
        path = tmp_path / "prometheus.yml"
        path.write_text(config)
        self.process, self.output = start_process(
            [
                binary,
                f"--config.file={path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            tmp_path / "prometheus.log",
            READY,
        )

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr):
        """{labels but the name, as a sorted tuple: value} of an instant query."""
        results = self.api("query", query=expr)["result"]
        return {labels(found["metric"]): float(found["value"][1]) for found in results}

    def until(self, what, get, condition):
        """Poll Prometheus's API until `condition(get())` holds."""
        deadline = time.monotonic() + DEADLINE
        while True:
            seen = get()
            if condition(seen):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus never showed {what}: {seen}")
            time.sleep(0.2)

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        self.output.close()


def labels(metric):
    return tuple(sorted((k, v) for k, v in metric.items() if k != "__name__"))


def configuration(target):
    """The guide's prometheus.yml part with its rule_files, pointed at
    `target`, scraped and evaluated every second."""
    scrape = docs_scrape_config()
    assert scrape.count("127.0.0.1:8001") == 1, scrape
    scrape = scrape.replace("127.0.0.1:8001", target)
    scrape, intervals = re.subn(r"scrape_interval: \S+", "scrape_interval: 1s", scrape)
    assert intervals == 1, scrape
    rule_files = docs_block("rule_files:")
    rule_files = rule_files.replace("/etc/prometheus/whiteboard-alerts.yml", str(RULES))
    quick = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
    return quick + rule_files + scrape


async def test_prometheus_sees_two_daphnes_through_one(start_server, live_db, tmp_path):
    shared = tmp_path / "metrics"
    first = start_server(WHITEBOARD_METRICS_DIR=shared)
    second = start_server(WHITEBOARD_METRICS_DIR=shared)
    slug = live_db.create_board()
    async with first.open(slug) as alice, second.open(slug) as bob:
        await read_state(alice)
        await read_state(bob)
        prometheus = Prometheus(tmp_path, configuration(f"127.0.0.1:{first.port}"))
        try:
            await to_thread(check_what_prometheus_sees, prometheus, first.port)
        finally:
            prometheus.stop()


def check_what_prometheus_sees(prometheus, port):
    instance = ("instance", f"127.0.0.1:{port}")
    job = ("job", "whiteboard")
    connections = prometheus.until(
        "2 connections",
        lambda: prometheus.query("whiteboard_connections"),
        lambda seen: 2.0 in seen.values(),
    )
    # One series for the host: the daphnes' numbers are summed, not listed.
    assert connections == {(instance, job): 2.0}
    assert prometheus.query('up{job="whiteboard"}') == {(instance, job): 1.0}
    processes = prometheus.until(
        "2 processes",
        lambda: prometheus.query("count(process_resident_memory_bytes)"),
        lambda seen: seen == {(): 2.0},
    )
    assert processes == {(): 2.0}
    pids = prometheus.query("process_start_time_seconds")
    assert len({dict(labels)["pid"] for labels in pids}) == 2

    # The alert rules load and evaluate against the real series, and none fires.
    def rules():
        return [
            rule
            for group in prometheus.api("rules")["groups"]
            for rule in group["rules"]
        ]

    evaluated = prometheus.until(
        "the rules evaluated",
        rules,
        lambda seen: seen and all(rule["health"] == "ok" for rule in seen),
    )
    assert [rule["name"] for rule in evaluated] == [r["alert"] for r in alert_rules()]
    assert [rule["state"] for rule in evaluated] == ["inactive"] * len(evaluated)
