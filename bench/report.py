"""Numbers for the bench: percentiles, medians over runs, and the Markdown table.

Kept apart from the load generator so that the figures a run prints and the figures
its JSON holds come from one place, and so `run.py` can take medians over runs
without knowing how a single run was measured.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence

TARGET_P99_MS = 100.0


def percentile(ordered: Sequence[int], p: float) -> int | None:
    """Nearest-rank percentile of an already sorted sequence (None when empty).

    Nearest rank returns a value that was actually observed, so a p99 is always a
    latency some delivery really had, never an interpolation between two of them.
    """
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def describe_ns(values: Sequence[int]) -> dict:
    """p50/p90/p99/max in milliseconds of nanosecond samples, plus their count."""
    ordered = sorted(values)
    figures = {"n": len(ordered)}
    for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
        value = percentile(ordered, p)
        figures[name] = None if value is None else round(value / 1e6, 2)
    return figures


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """A ratio rounded for reading, or None when either side is missing or zero."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def median_of(values: Sequence) -> object:
    """Median of the numeric values; for anything else the value all runs share.

    Counters and verdicts are not averaged: when runs disagree the cell says so.
    """
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return statistics.median(present)
    first = present[0]
    return first if all(v == first for v in present) else "differs"


def cell(value: object) -> str:
    """How one figure is written in the table."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "none"
    return str(value)


def markdown_table(rows: Sequence[tuple[str, Sequence]]) -> str:
    """One row per figure: its name, the median over runs, then each run's value."""
    runs = len(rows[0][1]) if rows else 0
    head = ["figure", "median" if runs > 1 else "value"]
    if runs > 1:
        head += [f"run {i + 1}" for i in range(runs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, values in rows:
        cells = [cell(median_of(values))]
        if runs > 1:
            cells += [cell(v) for v in values]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


# -- one run's figures, merged from the workers' tallies -------------------------


def summarize(cfg, results: list, phases: dict) -> dict:
    """Merge the workers' raw measurements into the figures of one run.

    `results` holds each worker's tally, or a dict saying why it failed.
    """
    tallies = [t for t in results if not isinstance(t, dict)]
    clients = [c for t in tallies for c in t.clients]
    live = [c for c in clients if c["connected"]]
    limits = live[0]["limits"] if live else {}
    summary = {
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "phases": phases,
        "limits": limits,
        "warnings": warnings_for(cfg, limits),
        "worker_failures": [t["failed"] for t in results if isinstance(t, dict)],
        "clients": {"requested": cfg.clients, "connected": len(live)},
        "ops": op_counts(cfg, tallies, clients),
        "deliveries": delivery_counts(cfg, tallies, live, phases),
        "latency_ms": {
            name: describe_ns(merged(tallies, name))
            for name in ("others", "echo", "pong", "send_lag")
        },
        "errors": counted(tallies, "errors"),
        "frames": counted(tallies, "frames"),
        "deviations": counted(tallies, "notes"),
        "seq": seq_counts(live),
        "closes": [
            f"client {c['index']}: {c['closed']}" for c in clients if c["closed"]
        ],
        "generator": generator_load(tallies, phases),
        "timeline": timeline(tallies),
    }
    summary["complete"] = (
        len(live) == cfg.clients
        and summary["ops"]["sent"] == summary["ops"]["target"]
        and summary["deliveries"]["received"] == summary["deliveries"]["expected"]
    )
    summary["seq_ok"] = bool(live) and summary["seq"]["ok_clients"] == len(live)
    return summary


def merged(tallies: list, name: str) -> list[int]:
    return [value for tally in tallies for value in getattr(tally, name)]


def timeline(tallies: list) -> list[dict]:
    """Deliveries to others and their p99/max for each second after the start.

    A run's p99 alone cannot tell a steady slowness from one stalled second; this
    can, and run.py lines the server's CPU up against the same seconds.
    """
    by_second: dict[int, list[int]] = {}
    for tally in tallies:
        for second, latency in zip(tally.others_at, tally.others, strict=True):
            by_second.setdefault(second, []).append(latency)
    return [
        {"t": second, **describe_ns(by_second[second])} for second in sorted(by_second)
    ]


def counted(tallies: list, name: str) -> dict:
    return dict(sum((getattr(t, name) for t in tallies), Counter()))


def op_counts(cfg, tallies: list, clients: list) -> dict:
    """Committed is what some client saw come back: the union of their bitmaps."""
    union = 0
    for tally in tallies:
        union |= int.from_bytes(tally.union, "little")
    return {
        "target": cfg.clients * cfg.ops_per_client,
        "sent": sum(c["sent"] for c in clients),
        "committed": union.bit_count(),
        "refused": sum(c["refused"] for c in clients),
    }


def delivery_counts(cfg, tallies: list, live: list, phases: dict) -> dict:
    """Every op sent should reach every connected client, its sender included."""
    sent_on: Counter = Counter()
    for c in live:
        sent_on[c.get("board", 0)] += c["sent"]
    received = sum(c["seen"] for c in live)
    start_ns = phases.get("start_ns") or 0
    last_ns = max((t.last_delivery for t in tallies), default=0)
    span_s = (last_ns - start_ns) / 1e9 if last_ns and start_ns else 0
    return {
        "expected": sum(sent_on[c.get("board", 0)] for c in live),
        "received": received,
        "duplicates": sum(c["duplicates"] for c in live),
        "complete_clients": sum(
            1 for c in live if c["seen"] == sent_on[c.get("board", 0)]
        ),
        "per_s": round(received / span_s, 1) if span_s else None,
        "offered_per_s": cfg.clients * cfg.clients * cfg.rate / cfg.boards,
    }


def seq_counts(live: list) -> dict:
    return {
        "ok_clients": sum(1 for c in live if c["seq_ok"]),
        "gaps": sum(c["seq_gaps"] for c in live),
        "backwards": sum(c["seq_backwards"] for c in live),
        "missing": sum(c["seq_missing"] for c in live),
    }


def generator_load(tallies: list, phases: dict) -> dict:
    """CPU the generator spent from the start to the end of draining, in cores:
    the workers' and the coordinating parent's."""
    cpu_s = sum(t.cpu_s for t in tallies) + phases.get("parent_cpu_s", 0)
    start_ns = phases.get("start_ns")
    wall_s = (phases["end_ns"] - start_ns) / 1e9 if start_ns else 0
    return {
        "cpu_s": round(cpu_s, 2),
        "wall_s": round(wall_s, 2),
        "cores": ratio(cpu_s, wall_s),
    }


def warnings_for(cfg, limits: dict) -> list[str]:
    """Scenarios the server's advertised limits forbid, stated before the numbers."""
    found = []
    allowed = limits.get("ops_per_second")
    if isinstance(allowed, int | float) and cfg.rate > allowed:
        found.append(f"rate {cfg.rate}/s exceeds the server's ops_per_second {allowed}")
    room = limits.get("max_elements")
    per_board = math.ceil(cfg.clients / cfg.boards) * cfg.ops_per_client
    if isinstance(room, int) and per_board > room:
        found.append(f"{per_board} adds to a board exceed max_elements {room}")
    return found


def passed(summary: dict) -> bool:
    """Correctness only: every op reached every client, in seq order. Never timing."""
    return bool(summary["complete"] and summary["seq_ok"])


# -- the table -------------------------------------------------------------------


def load_rows(summaries: list[dict]) -> list[tuple[str, list]]:
    """The generator's figures, one row each, one value per run."""
    first = summaries[0]

    def row(name: str, pick) -> tuple[str, list]:
        return name, [pick(s) for s in summaries]

    def lat(kind: str, p: str):
        return lambda s: s["latency_ms"][kind][p]

    rows = [
        row(
            f"clients connected (of {first['clients']['requested']})",
            lambda s: s["clients"]["connected"],
        ),
        row(
            f"ops sent (target {first['ops']['target']:,})", lambda s: s["ops"]["sent"]
        ),
        row("ops committed (distinct cids seen)", lambda s: s["ops"]["committed"]),
        row(
            "deliveries expected (ops x clients)", lambda s: s["deliveries"]["expected"]
        ),
        row("deliveries received", lambda s: s["deliveries"]["received"]),
        row("delivered in full", lambda s: s["complete"]),
        row("seq strictly +1 at every client", lambda s: s["seq_ok"]),
        row(
            f"deliveries/s (offered {first['deliveries']['offered_per_s']:,.0f})",
            lambda s: s["deliveries"]["per_s"],
        ),
    ]
    rows += [
        row(f"latency to others {p}, ms", lat("others", p))
        for p in ("p50", "p90", "p99", "max")
    ]
    rows += [
        row(
            f"p99 / {TARGET_P99_MS:.0f} ms target",
            lambda s: ratio(s["latency_ms"]["others"]["p99"], TARGET_P99_MS),
        ),
        row("own echo p50, ms", lat("echo", "p50")),
        row("own echo p99, ms", lat("echo", "p99")),
        row("ping-pong round trip p50, ms", lat("pong", "p50")),
        row("ping-pong round trip p99, ms", lat("pong", "p99")),
        row("send lag behind schedule p99, ms", lat("send_lag", "p99")),
        row("op entries per ops frame (mean)", ops_per_frame),
        row("errors received, by code", lambda s: s["errors"]),
        row("generator CPU, s", lambda s: s["generator"]["cpu_s"]),
        row("generator CPU, cores", lambda s: s["generator"]["cores"]),
    ]
    return rows


def worst_second(summary: dict) -> list[str]:
    """The second with the highest p99, with whatever else was measured in it."""
    seconds = [entry for entry in summary.get("timeline", []) if entry["p99"]]
    if not seconds:
        return []
    worst = max(seconds, key=lambda entry: entry["p99"])
    latency = "/".join(str(worst[p]) for p in ("p50", "p90", "p99", "max"))
    text = f"worst second t={worst['t']}s: {worst['n']} deliveries to others, "
    text += f"p50/p90/p99/max {latency} ms"
    for key in ("server_cores", "machine_cores"):
        if worst.get(key) is not None:
            text += f", {key.replace('_', ' ')} {worst[key]}"
    return [text]


def ops_per_frame(summary: dict) -> float | None:
    """How much the server batches: deliveries over the `ops` frames carrying them."""
    frames = summary["frames"].get("ops")
    return ratio(summary["deliveries"]["received"], frames)


def notes(summaries: list[dict]) -> str:
    """Everything that is not a number: warnings, deviations, unexpected closes."""
    lines = []
    for i, s in enumerate(summaries, 1):
        found = [*s["warnings"], *s["worker_failures"], *s["closes"][:10]]
        found += [f"{text} (x{n})" for text, n in s["deviations"].items()]
        if s["seq"]["gaps"] or s["seq"]["backwards"] or s["seq"]["missing"]:
            found.append(f"seq problems: {s['seq']}")
        found += worst_second(s)
        if s["deliveries"]["duplicates"]:
            found.append(f"duplicate deliveries: {s['deliveries']['duplicates']}")
        lines += [f"- run {i}: {text}" for text in found]
    return "\n".join(lines)
