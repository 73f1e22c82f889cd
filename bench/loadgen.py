"""Load generator for the board WebSocket protocol (shared PROTOCOL.md, version 1).

N clients join one board, then all start together and send `add` ops at R ops/s
for D seconds, each op timed on arrival at every client (see worker.py). Clients
are spread over worker processes, each with its own event loop, so that one
Python loop in the generator is not what gets measured; this parent process only
holds the start and end barriers and merges the workers' raw measurements.

    .venv/bin/python bench/loadgen.py ws://127.0.0.1:8000/ws/boards/bench/ \\
        --clients 50 --rate 10 --duration 20 --procs 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from urllib.parse import urlsplit

import report
from scenario import LoadConfig, Shared
from worker import POLL_S, cpu_seconds, worker_main

START_LEAD_NS = 300_000_000


def origin_for(url: str) -> str:
    """The Origin a browser on the same server would send (the server checks it)."""
    parts = urlsplit(url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}"


# -- the parent: start workers, hold the barriers, merge -----------------------


def run_load(cfg: LoadConfig, on_phase=None) -> dict:
    """Run one scenario end to end and return its summary.

    `on_phase(name)` is called with "start" just before the clients are released,
    with "tick" once a second while they work, and with "end" once every worker
    has drained, before any socket closes, so that a caller can sample the server
    over exactly the measured phase; what it returns lands in the summary.
    """
    ctx = mp.get_context("spawn")
    shared = Shared(ctx, cfg.boards)
    workers = start_workers(ctx, cfg, shared)
    try:
        phases = coordinate(cfg, shared, workers, on_phase or (lambda name: None))
    finally:
        shared.release.set()
        tallies = collect(workers)
    return report.summarize(cfg, tallies, phases)


def start_workers(ctx, cfg: LoadConfig, shared: Shared) -> list:
    """One process per group of clients, dealt round-robin; each gets a pipe."""
    workers = []
    for p in range(min(cfg.procs, cfg.clients)):
        indices = list(range(p, cfg.clients, cfg.procs))
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=worker_main, args=(cfg, indices, shared, sender), daemon=True
        )
        proc.start()
        sender.close()
        workers.append((proc, receiver))
    return workers


class Ticker:
    """Calls `on_phase("tick")` once a second from the start, keeping the samples.

    Aligned with the start so that sample k covers the same second as the
    generator's per-second latencies; a stall then shows on both sides at once.
    """

    def __init__(self, on_phase, start_ns: int) -> None:
        self.on_phase = on_phase
        self.next_ns = start_ns + 1_000_000_000
        self.samples: list = []

    def __call__(self) -> None:
        if time.time_ns() >= self.next_ns:
            self.samples.append(self.on_phase("tick"))
            self.next_ns += 1_000_000_000


def block_until(predicate, timeout: float, workers: list, tick=None) -> bool:
    """Wait in the parent for a condition; give up early if a worker died."""
    deadline = time.monotonic() + timeout
    while not predicate():
        died = any(proc.exitcode not in (None, 0) for proc, _ in workers)
        if died or time.monotonic() > deadline:
            return False
        if tick is not None:
            tick()
        time.sleep(POLL_S)
    return True


def coordinate(cfg: LoadConfig, shared: Shared, workers: list, on_phase) -> dict:
    """Hold the start until everyone has joined, then wait for all to drain."""
    joined = block_until(
        lambda: shared.connected.value + shared.failed.value >= cfg.clients,
        cfg.connect_timeout * 4,
        workers,
    )
    if shared.connected.value == 0:
        shared.start_at.value = -1
        return {"joined": joined, "started": False}
    start_probe = on_phase("start")
    cpu0 = cpu_seconds()
    start_ns = time.time_ns() + START_LEAD_NS
    shared.start_at.value = start_ns
    ticker = Ticker(on_phase, start_ns)
    drained = block_until(
        lambda: shared.drained.value >= len(workers),
        cfg.duration * 3 + cfg.drain + 30,
        workers,
        ticker,
    )
    end_ns = time.time_ns()
    return {
        "parent_cpu_s": cpu_seconds() - cpu0,
        "joined": joined,
        "started": True,
        "drained": drained,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "probes": {
            "start": start_probe,
            "ticks": ticker.samples,
            "end": on_phase("end"),
        },
    }


def collect(workers: list) -> list:
    """Each worker's tally (or its failure), then make sure every process is gone."""
    tallies = []
    for proc, conn in workers:
        if conn.poll(60):
            tallies.append(conn.recv())
        else:
            tallies.append({"failed": f"worker {proc.pid} sent no result"})
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
            proc.join()
    return tallies


# -- command line --------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The scenario options, shared with run.py so both spell them the same."""
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0, help="ops/s per client")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds")
    parser.add_argument("--procs", type=int, default=2, help="worker processes")
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait")
    parser.add_argument("--ping-every", type=float, default=5.0, help="seconds")
    parser.add_argument("--connect-timeout", type=float, default=30.0)


def config_from(args: argparse.Namespace, url: str, origin: str | None) -> LoadConfig:
    return LoadConfig(
        url=url,
        origin=origin or origin_for(url),
        clients=args.clients,
        rate=args.rate,
        duration=args.duration,
        procs=max(1, args.procs),
        drain=args.drain,
        ping_every=args.ping_every,
        connect_timeout=args.connect_timeout,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="ws://HOST:PORT/ws/boards/SLUG/")
    parser.add_argument("--origin", help="default: http://HOST:PORT of the url")
    parser.add_argument("--json", help="also write the summary to this file")
    add_arguments(parser)
    args = parser.parse_args(argv)
    summary = run_load(config_from(args, args.url, args.origin))
    print(report.markdown_table(report.load_rows([summary])))
    print(report.notes([summary]) or "- no warnings, deviations or unexpected closes")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(summary, out, indent=2)
    return 0 if report.passed(summary) else 1


if __name__ == "__main__":
    sys.exit(main())
