"""A short run of every bench scenario: correctness only, never timing.

`bench/run.py --smoke` starts the real servers each scenario needs (daphne on
SQLite and on PostgreSQL, Redis, two daphnes behind nginx, one daphne per core
behind nginx, the websockets baseline), runs every scenario at a tiny size
against ours and the baseline, and writes its figures as JSON. This test reads
them and asserts what a user would notice: every op reached every client on its
board, in seq order, every sender got its own ops back (its acks), a late joiner
got the whole board, every idle connection stayed open, and the processes behind
nginx all had clients. The timings in the JSON are not looked at.
"""

import json
import os
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
        timeout=360,
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
    "name",
    [
        "busy",
        "fifty",
        "many",
        "sustained-sqlite",
        "sustained-pg",
        "scaleout",
        "busy-multi",
        "many-multi",
    ],
)
def test_every_op_reaches_every_client_in_order(smoke, name):
    _, results = smoke
    for target, figures in runs(results, name):
        assert figures["expected"] > 0, (name, target)
        assert figures["delivered"] == figures["expected"], (name, target, figures)
        assert figures["in_order"] is True, (name, target, figures["notes"])
        assert figures["errors"] == {}, (name, target, figures["errors"])


@pytest.mark.parametrize(
    "name", ["busy", "fifty", "sustained-sqlite", "sustained-pg", "busy-multi"]
)
def test_every_sender_gets_its_own_ops_back(smoke, name):
    _, results = smoke
    for target, figures in runs(results, name):
        assert figures["sent"] > 0
        assert figures["acked"] == figures["sent"], (name, target, figures)


@pytest.mark.parametrize(
    ("name", "daphnes"),
    [
        ("scaleout", 2),
        ("busy-multi", len(os.sched_getaffinity(0))),
        ("many-multi", len(os.sched_getaffinity(0))),
    ],
)
def test_scale_out_spreads_clients_over_every_process(smoke, name, daphnes):
    _, results = smoke
    figures = results[name]["ours"][0]
    assert len(figures["connections_per_server"]) == daphnes
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
