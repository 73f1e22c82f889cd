"""The issue's scenarios, each run against our server and against the baseline.

A scenario has a full size (the issue's table) and a smoke size (a few seconds,
for `make test`). `run_scenario(name, target, smoke, tmp)` starts what the
target needs, loads it, and returns one flat dict of figures; every figure is
measured the same way for both targets, so their ratio means something.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import clients
import report
import servers
from loadgen import origin_for, run_load
from scenario import LoadConfig

# Sustained writes send 2,000 ops/s from 20 connections at 100 ops/s each: the
# default 50 ops/s per connection would need 40 writers and double the fan-out.
SUSTAINED_ENV = {
    "WHITEBOARD_OPS_PER_SECOND": "200",
    "WHITEBOARD_MAX_ELEMENTS": "200000",
}
# The -multi scenarios run one daphne per core, as `make run-multi` does.
CORES = len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # load, latejoin, idle
    target: str
    clients: int = 0
    rate: float = 0.0
    duration: float = 0.0
    boards: int = 1
    elements: int = 0
    joins: int = 0
    database: str = "sqlite"
    scaleout: bool = False  # nginx (least_conn) in front, Redis channel layer
    daphnes: int = 1
    latency: str = "others"  # which latency the target is about: others or echo
    env: dict = field(default_factory=dict)


BUSY = Scenario(
    "busy",
    "load",
    "all delivered; p99 < 150 ms; CPU/delivery <= 2x baseline",
    clients=100,
    rate=10,
    duration=20,
)
MANY = Scenario(
    "many",
    "load",
    "all delivered; p99 < 150 ms",
    clients=1000,
    rate=1,
    # 60 s until the -multi scenarios came; 40 s keeps `make bench` under 15 min.
    duration=40,
    boards=100,
)
SCALEOUT = Scenario(
    "scaleout",
    "load",
    "all delivered in seq order; p99 < 200 ms",
    clients=100,
    rate=10,
    duration=20,
    database="pg",
    scaleout=True,
    daphnes=2,
)
# `busy` and `many` on one daphne per core behind nginx, with Redis and the
# database `make run-multi` uses by default (SQLite, shared by the processes).
MULTI = {"scaleout": True, "daphnes": CORES}
FULL = [
    BUSY,
    Scenario(
        "fifty",
        "load",
        "all delivered in seq order",
        clients=50,
        rate=10,
        duration=20,
    ),
    MANY,
    Scenario(
        "latejoin",
        "latejoin",
        "last snapshot frame < 300 ms after connect",
        elements=10_000,
        joins=7,
    ),
    Scenario(
        "sustained-sqlite",
        "load",
        "all acked; ack p99 < 200 ms",
        clients=20,
        rate=100,
        duration=20,  # 30 s before the -multi scenarios
        latency="echo",
        env=SUSTAINED_ENV,
    ),
    Scenario(
        "sustained-pg",
        "load",
        "all acked; ack p99 < 200 ms",
        clients=20,
        rate=100,
        duration=20,  # 30 s before the -multi scenarios
        latency="echo",
        env=SUSTAINED_ENV,
        database="pg",
    ),
    Scenario(
        "idle",
        "idle",
        "<= 40 KB server memory per connection",
        clients=5000,
        boards=100,
    ),
    SCALEOUT,
    replace(
        BUSY,
        name="busy-multi",
        target=f"as busy, on {CORES} daphnes (one per core): all delivered in order",
        **MULTI,
    ),
    replace(
        MANY,
        name="many-multi",
        target=f"as many, on {CORES} daphnes (one per core): all delivered in order",
        **MULTI,
    ),
]
# Not in the default run: the comparisons docs/performance.md quotes.
EXTRA = [
    replace(SCALEOUT, name="scaleout-pubsub", env={"REDIS_CHANNEL_LAYER": "pubsub"}),
]
SMOKE = {
    "busy": {"clients": 10, "rate": 5, "duration": 1},
    "fifty": {"clients": 10, "rate": 5, "duration": 1},
    "many": {"clients": 40, "rate": 2, "duration": 1, "boards": 8},
    "latejoin": {"elements": 300, "joins": 2},
    "sustained-sqlite": {"clients": 4, "rate": 25, "duration": 1},
    "sustained-pg": {"clients": 4, "rate": 25, "duration": 1},
    "idle": {"clients": 100, "boards": 10},
    "scaleout": {"clients": 10, "rate": 5, "duration": 1},
    "scaleout-pubsub": {"clients": 10, "rate": 5, "duration": 1},
    "busy-multi": {"clients": 10, "rate": 5, "duration": 1},
    "many-multi": {"clients": 40, "rate": 2, "duration": 1, "boards": 8},
}
BY_NAME = {s.name: s for s in FULL + EXTRA}


def sized(name: str, smoke: bool, factor: float = 1.0) -> Scenario:
    """The scenario at its full size, or its smoke size; durations times `factor`."""
    scenario = BY_NAME[name]
    if smoke:
        scenario = replace(scenario, **SMOKE[name])
    return replace(scenario, duration=scenario.duration * factor)


def slugs(scenario: Scenario) -> list[str]:
    return [f"bench-{i}" for i in range(scenario.boards)]


# -- where it runs -------------------------------------------------------------------


@dataclass
class Target:
    """Where the clients connect, and which processes and ports are the server."""

    base: str
    pids: list[int]
    ports: list[int]

    def server_pids(self) -> list[int]:
        return servers.with_children(self.pids)


@contextlib.contextmanager
def target_servers(scenario: Scenario, target: str, tmp: Path):
    """Start what this target needs; yield it as a Target."""
    full = {slugs(scenario)[0]: scenario.elements} if scenario.elements else None
    if target == "baseline":
        with servers.baseline(tmp / "baseline.log", full) as proc:
            yield Target(f"ws://127.0.0.1:{proc.port}", [proc.pid], [proc.port])
        return
    with contextlib.ExitStack() as stack:
        database_url = redis_url = None
        pids = []
        if scenario.database == "pg":
            pg, database_url = stack.enter_context(servers.postgres(tmp))
            pids.append(pg.pid)
        if scenario.scaleout:
            redis, redis_url = stack.enter_context(servers.redis(tmp))
            pids.append(redis.pid)
        env = servers.site_env(tmp, database_url, redis_url, scenario.env)
        servers.prepare_site(env, slugs(scenario), full)
        daphnes = [
            stack.enter_context(servers.daphne(env, tmp / f"daphne-{i}.log"))
            for i in range(scenario.daphnes)
        ]
        pids += [d.pid for d in daphnes]
        front = daphnes[0]
        if scenario.scaleout:
            front = stack.enter_context(servers.nginx(tmp, [d.port for d in daphnes]))
            pids.append(front.pid)
        ports = [d.port for d in daphnes]
        yield Target(f"ws://127.0.0.1:{front.port}", pids, ports)


def run_scenario(
    scenario: Scenario, target: str, tmp: Path, procs: int, profile: Path | None = None
) -> dict:
    with target_servers(scenario, target, tmp) as where:
        urls = tuple(f"{where.base}/ws/boards/{slug}/" for slug in slugs(scenario))
        if scenario.kind == "latejoin":
            return late_join(scenario, urls[0], where.server_pids)
        if scenario.kind == "idle":
            return idle(scenario, urls, where.server_pids)
        spy = profile / f"{scenario.name}-{target}.txt" if profile else None
        return load(scenario, urls, where, procs, spy)


# -- the three kinds -------------------------------------------------------------------


def load(
    scenario: Scenario, urls: tuple, where: Target, procs: int, spy: Path | None
) -> dict:
    """Clients send ops on schedule; every delivery is checked and timed."""
    cfg = LoadConfig(
        url=urls[0],
        origin=origin_for(urls[0]),
        urls=urls,
        clients=scenario.clients,
        rate=scenario.rate,
        duration=scenario.duration,
        procs=procs,
        drain=15.0,
    )
    samples, spies = {}, []

    def on_phase(name: str):
        samples[name] = sample = servers.probe(where.server_pids())
        sample["machine_busy_s"] = servers.machine_busy_s()
        if name == "start":
            sample["connections"] = servers.established(where.ports)
            if spy is not None:
                spies.extend(servers.py_spy(where.pids, spy, scenario.duration))
        return sample

    summary = run_load(cfg, on_phase=on_phase)
    for proc in spies:
        proc.wait(60)
    cpu_s = servers.cpu_between(samples.get("start"), samples.get("end"))
    deliveries = summary["deliveries"]
    latency = summary["latency_ms"][scenario.latency]
    return {
        "ok": report.passed(summary),
        "delivered": deliveries["received"],
        "expected": deliveries["expected"],
        "in_order": summary["seq_ok"],
        "acked": summary["ops"]["committed"],
        "sent": summary["ops"]["sent"],
        "errors": summary["errors"],
        "deliveries_per_s": deliveries["per_s"],
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "cpu_ms_per_1000": report.ratio(cpu_s * 1e6, deliveries["received"]),
        "server_cores": report.ratio(cpu_s, summary["generator"]["wall_s"]),
        "peak_rss_mb": round(samples["end"]["hwm_mb"], 1) if "end" in samples else None,
        "generator_cores": summary["generator"]["cores"],
        "send_lag_p99_ms": summary["latency_ms"]["send_lag"]["p99"],
        "other_cores": other_cores(samples, cpu_s, summary["generator"]),
        "ops_per_frame": report.ops_per_frame(summary),
        "connections_per_server": samples.get("start", {}).get("connections"),
        "notes": report.notes([summary]),
    }


def other_cores(samples: dict, server_s: float, generator: dict) -> float | None:
    """Cores the rest of the machine used meanwhile: neighbours on a shared machine."""
    start, end = samples.get("start"), samples.get("end")
    if not (start and end and generator["wall_s"]):
        return None
    busy_s = end["machine_busy_s"] - start["machine_busy_s"]
    wall_s = (end["t_ns"] - start["t_ns"]) / 1e9
    ours = server_s + generator["cpu_s"] * wall_s / generator["wall_s"]
    return round(max(0.0, busy_s - ours) / wall_s, 2)


def late_join(scenario: Scenario, url: str, pids) -> dict:
    result = asyncio.run(clients.late_join(url, origin_for(url), scenario.joins))
    ordered = sorted(result["ms"])
    counts = result["counts"]
    return {
        "ok": counts == [(scenario.elements, counts[0][1])] if counts else False,
        "delivered": counts[0][0] if counts else 0,
        "expected": scenario.elements,
        "snapshot_frames": counts[0][1] if counts else None,
        "p50_ms": round(report.percentile(ordered, 50), 1),
        "max_ms": round(ordered[-1], 1),
        "client_cpu_ms": round(statistics.median(result["client_cpu_ms"]), 1),
        "joins_ms": [round(t, 1) for t in result["ms"]],
        "peak_rss_mb": round(servers.probe(pids())["hwm_mb"], 1),
    }


def idle(scenario: Scenario, urls: tuple, pids) -> dict:
    """Memory per connection: RSS with all open, less RSS after a warm-up join."""
    origin = origin_for(urls[0])
    asyncio.run(clients.late_join(urls[0], origin, 2))  # warm up: imports, pools
    time.sleep(0.5)
    before = servers.probe(pids())

    def while_open() -> dict:
        time.sleep(1.0)  # let the server finish the last joins' writes
        return {"during": servers.probe(pids())}

    result = asyncio.run(
        clients.hold_idle(list(urls), origin, scenario.clients, while_open)
    )
    grown_kb = (result["during"]["rss_mb"] - before["rss_mb"]) * 1024
    opened = result["open"]
    return {
        "ok": opened == scenario.clients,
        "delivered": opened,
        "expected": scenario.clients,
        "open_s": result["open_s"],
        "kb_per_conn": round(grown_kb / opened, 1) if opened else None,
        "rss_before_mb": round(before["rss_mb"], 1),
        "rss_open_mb": round(result["during"]["rss_mb"], 1),
        "peak_rss_mb": round(result["during"]["hwm_mb"], 1),
        "failures": result["failures"],
    }
