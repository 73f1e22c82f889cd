"""The server's Prometheus metrics: one place defines them, every module counts.

Families (docs/operations.md lists them with what each means):

- `whiteboard_connections`, `whiteboard_boards_active`: gauges of this host's
  processes, summed;
- `whiteboard_ops_committed_total{kind}`, `whiteboard_op_refusals_total{code}`,
  `whiteboard_closes_total{code,by}`: counters;
- `whiteboard_commit_seconds`, `whiteboard_broadcast_seconds`,
  `whiteboard_batch_ops`, `whiteboard_send_buffer_bytes`: histograms;
- `whiteboard_channel_layer_errors_total{operation}`,
  `whiteboard_database_errors_total`: counters;
- `process_*`: the client library's process metrics.

No label names a board or a user: their number has no bound. Every label value
comes from a closed set (op kinds, protocol error codes, close codes).

Several server processes on one host share a directory
(`WHITEBOARD_METRICS_DIR`, prometheus_client's multiprocess mode, set up by
config/settings.py before anything imports prometheus_client): each process
writes its numbers to its own files there, and `/metrics` from any of them
answers for all. Without it (one process, `make run`) the numbers live in this
process's memory.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import Metric

# Decided by prometheus_client when it was first imported (see settings.py).
MULTIPROCESS = bool(getattr(values.ValueClass, "_multiprocess", False))

CONNECTIONS = Gauge(
    "whiteboard_connections",
    "Open board WebSockets (summed over this host's processes).",
    multiprocess_mode="livesum",
)
BOARDS_ACTIVE = Gauge(
    "whiteboard_boards_active",
    "Boards with at least one open socket in a process (summed over this "
    "host's processes: a board open in two processes counts twice).",
    multiprocess_mode="livesum",
)
OPS_COMMITTED = Counter(
    "whiteboard_ops_committed", "Ops committed, by op kind.", ["kind"]
)
OP_REFUSALS = Counter(
    "whiteboard_op_refusals",
    "Error frames sent (refused ops, frames and connections), by error code.",
    ["code"],
)
CLOSES = Counter(
    "whiteboard_closes",
    "Board WebSockets closed, by close code and by who closed (server, client).",
    ["code", "by"],
)
COMMIT_SECONDS = Histogram(
    "whiteboard_commit_seconds",
    "Time of one commit transaction (the ops of every board it holds).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BROADCAST_SECONDS = Histogram(
    "whiteboard_broadcast_seconds",
    "Time from an op's arrival to the broadcast of its commit.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_OPS = Histogram(
    "whiteboard_batch_ops",
    "Ops in one commit transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
SEND_BUFFER_BYTES = Histogram(
    "whiteboard_send_buffer_bytes",
    "Bytes waiting for one socket (its queue plus the server's buffer), "
    "sampled for every connection every few seconds.",
    buckets=(0, 1024, 16384, 65536, 262144, 1048576, 4194304, 16777216),
)
CHANNEL_LAYER_ERRORS = Counter(
    "whiteboard_channel_layer_errors",
    "Failed channel layer calls, by operation: send, receive, group "
    "(membership), check (the readiness check's round trip).",
    ["operation"],
)
DATABASE_ERRORS = Counter(
    "whiteboard_database_errors",
    "Database errors met by the realtime side and by HTTP requests.",
)

# The series the alerts watch exist from the start, at 0: increase() and
# rate() see the first error only against an earlier sample (docs/alerts.yml).
for _operation in ("send", "receive", "group", "check"):
    CHANNEL_LAYER_ERRORS.labels(_operation)
for _code in ("1011", "4413"):
    CLOSES.labels(_code, "server")

# Close codes a client may choose are counted under "other" past this set,
# so that a client cannot make up label values.
KNOWN_CLOSE_CODES = frozenset(
    {1000, 1001, 1005, 1006, 1008, 1009, 1011, 1012, 1013}
    | {4400, 4401, 4403, 4404, 4408, 4413, 4429}
)
CODE_PATTERN = re.compile(r"[a-z_]{1,40}")


# -- counting (called on the event loop; each call is a few microseconds) ------


def committed(kinds: Iterable[str]) -> None:
    """Count committed ops, one kind per op."""
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    for kind, count in counts.items():
        OPS_COMMITTED.labels(kind).inc(count)


def refused(code: str) -> None:
    OP_REFUSALS.labels(code if CODE_PATTERN.fullmatch(code) else "other").inc()


def closed(code: int | None, *, by: str) -> None:
    label = "none" if code is None else str(code)
    if code is not None and code not in KNOWN_CLOSE_CODES:
        label = "other"
    CLOSES.labels(label, by).inc()


def layer_error(operation: str) -> None:
    CHANNEL_LAYER_ERRORS.labels(operation).inc()


def database_error() -> None:
    DATABASE_ERRORS.inc()


def count_request_error(sender: object, **kwargs: object) -> None:
    """got_request_exception: an HTTP request failed; count database errors."""
    from django.db import DatabaseError

    if isinstance(sys.exc_info()[1], DatabaseError):
        DATABASE_ERRORS.inc()


# -- exposition -----------------------------------------------------------------


def metrics_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def file_pids(directory: str) -> set[int]:
    """The processes with files in the metrics directory."""
    pids = set()
    for path in glob.glob(os.path.join(directory, "*.db")):
        tail = os.path.basename(path)[: -len(".db")].rsplit("_", 1)[-1]
        if tail.isdigit():
            pids.add(int(tail))
    return pids


def forget_dead(directory: str) -> set[int]:
    """Drop the live gauges of processes that ended (killed ones included);
    return the pids still running. Counters and histograms of ended processes
    stay: their totals still count."""
    running = set()
    for pid in file_pids(directory):
        if alive(pid):
            running.add(pid)
        else:
            multiprocess.mark_process_dead(pid, directory)
    return running


class HostProcesses:
    """process_* metrics of every running process of the metrics directory,
    read from /proc at scrape time, each sample labelled with its pid."""

    def __init__(self, pids: Iterable[int]) -> None:
        self.pids = sorted(pids)

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for pid in self.pids:
            collector = ProcessCollector(pid=functools.partial(int, pid), registry=None)
            for family in collector.collect():
                target = merged.get(family.name)
                if target is None:
                    target = merged[family.name] = Metric(
                        family.name, family.documentation, family.type
                    )
                for sample in family.samples:
                    labels = {**sample.labels, "pid": str(pid)}
                    target.add_sample(sample.name, labels, sample.value)
        yield from merged.values()


def registry() -> CollectorRegistry:
    """What /metrics answers: this host's processes, or this process alone."""
    if not MULTIPROCESS:
        return REGISTRY
    directory = metrics_dir()
    found = CollectorRegistry()
    multiprocess.MultiProcessCollector(found, path=directory)
    found.register(HostProcesses(forget_dead(directory)))
    return found


def exposition() -> tuple[bytes, str]:
    """The text exposition format: (body, content type)."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST


def forget_this_process() -> None:
    """At exit: this process's gauges stop counting."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid(), metrics_dir())


# -- reading them back (the admin's Server status page) ----------------------------


@dataclass
class Histo:
    """One histogram summed over its labels: cumulative counts per bound."""

    buckets: dict[float, float] = field(default_factory=dict)
    count: float = 0.0
    total: float = 0.0

    def quantile(self, q: float) -> float | None:
        """The bucket bound under which a fraction `q` of observations fall
        (an upper bound of the true quantile), or None without observations."""
        if not self.count:
            return None
        wanted = q * self.count
        for bound in sorted(self.buckets):
            if self.buckets[bound] >= wanted:
                return bound
        return float("inf")


@dataclass
class Snapshot:
    """The numbers of /metrics, summed over label sets where that makes sense."""

    taken: float
    connections: float = 0.0
    boards_active: float = 0.0
    ops_committed: dict[str, float] = field(default_factory=dict)
    refusals: dict[str, float] = field(default_factory=dict)
    closes: dict[tuple[str, str], float] = field(default_factory=dict)
    channel_layer_errors: float = 0.0
    database_errors: float = 0.0
    commit: Histo = field(default_factory=Histo)
    broadcast: Histo = field(default_factory=Histo)
    batch: Histo = field(default_factory=Histo)
    send_buffer: Histo = field(default_factory=Histo)
    processes: int = 1

    @property
    def ops_total(self) -> float:
        return sum(self.ops_committed.values())


def snapshot() -> Snapshot:
    """Read the current numbers the way a scrape would."""
    found = Snapshot(taken=time.time())
    histograms = {
        "whiteboard_commit_seconds": found.commit,
        "whiteboard_broadcast_seconds": found.broadcast,
        "whiteboard_batch_ops": found.batch,
        "whiteboard_send_buffer_bytes": found.send_buffer,
    }
    pids: set[str] = set()
    for family in registry().collect():
        for sample in family.samples:
            take(found, histograms, sample.name, sample.labels, sample.value)
            if sample.name.startswith("process_") and "pid" in sample.labels:
                pids.add(sample.labels["pid"])
    found.processes = max(1, len(pids))
    return found


def take(
    found: Snapshot,
    histograms: dict[str, Histo],
    name: str,
    labels: dict[str, str],
    value: float,
) -> None:
    if name == "whiteboard_connections":
        found.connections += value
    elif name == "whiteboard_boards_active":
        found.boards_active += value
    elif name == "whiteboard_ops_committed_total":
        add(found.ops_committed, labels["kind"], value)
    elif name == "whiteboard_op_refusals_total":
        add(found.refusals, labels["code"], value)
    elif name == "whiteboard_closes_total":
        add(found.closes, (labels["code"], labels["by"]), value)
    elif name == "whiteboard_channel_layer_errors_total":
        found.channel_layer_errors += value
    elif name == "whiteboard_database_errors_total":
        found.database_errors += value
    else:
        base, _, part = name.rpartition("_")
        histo = histograms.get(base)
        if histo is None:
            return
        if part == "bucket":
            bound = float(labels["le"])
            histo.buckets[bound] = histo.buckets.get(bound, 0.0) + value
        elif part == "count":
            histo.count += value
        elif part == "sum":
            histo.total += value


def add(table: dict[Any, float], key: Any, value: float) -> None:
    table[key] = table.get(key, 0.0) + value
