"""A short run of every bench scenario: correctness only, never timing.

`bench/run.py --smoke` starts the real servers each scenario needs (daphne on
SQLite and on PostgreSQL, Redis, two daphnes behind nginx, the websockets
baseline), runs every scenario at a tiny size against ours and the baseline,
and writes its figures as JSON. This test reads them and asserts what a user
would notice: every op reached every client on its board, in seq order, every
sender got its own ops back (its acks), a late joiner got the whole board, and
every idle connection stayed open. The timings in the JSON are not looked at.
"""

import json
import subprocess
import sys

import pytest

from tests.live import ROOT


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    output = tmp_path_factory.mktemp("bench") / "smoke.json"
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert output.exists(), done.stdout + done.stderr
    return done, json.loads(output.read_text())["results"]


def runs(results, name):
    for target in ("ours", "baseline"):
        assert results[name][target], f"{name} did not run against {target}"
        for figures in results[name][target]:
            yield target, figures


def test_exit_status_says_everything_arrived(smoke):
    done, _ = smoke
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.parametrize(
    "name", ["busy", "many", "sustained-sqlite", "sustained-pg", "scaleout"]
)
def test_every_op_reaches_every_client_in_order(smoke, name):
    _, results = smoke
    for target, figures in runs(results, name):
        assert figures["expected"] > 0, (name, target)
        assert figures["delivered"] == figures["expected"], (name, target, figures)
        assert figures["in_order"] is True, (name, target, figures["notes"])
        assert figures["errors"] == {}, (name, target, figures["errors"])


@pytest.mark.parametrize("name", ["busy", "sustained-sqlite", "sustained-pg"])
def test_every_sender_gets_its_own_ops_back(smoke, name):
    _, results = smoke
    for target, figures in runs(results, name):
        assert figures["sent"] > 0
        assert figures["acked"] == figures["sent"], (name, target, figures)


def test_scale_out_spreads_clients_over_both_processes(smoke):
    _, results = smoke
    figures = results["scaleout"]["ours"][0]
    assert len(figures["connections_per_server"]) == 2
    assert all(count > 0 for count in figures["connections_per_server"])


def test_late_joiner_receives_the_whole_board(smoke):
    _, results = smoke
    for target, figures in runs(results, "latejoin"):
        assert figures["delivered"] == figures["expected"] > 0, (target, figures)


def test_idle_connections_all_stay_open(smoke):
    _, results = smoke
    for target, figures in runs(results, "idle"):
        assert figures["delivered"] == figures["expected"] > 0, (target, figures)
        assert figures["kb_per_conn"] is not None
