"""Run the issue's scenarios against our server and the baseline; print one table.

Every scenario starts the real servers it needs on loopback (daphne, the
`websockets` baseline, redis-server, a throwaway PostgreSQL, nginx), runs the
same load against our server and then against the baseline, and reports each
figure for both with their ratio. With `--runs K` the two alternate K times and
the table shows medians. The exit status says whether everything was delivered
in order; it never depends on timing.

    .venv/bin/python bench/run.py                          # every scenario, full size
    .venv/bin/python bench/run.py --scenarios busy,idle --runs 3
    .venv/bin/python bench/run.py --smoke                  # a few seconds each
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import scenarios
import servers

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
TARGETS = ("ours", "baseline")

# (figure key, label) per scenario kind, in table order.
ROWS = {
    "load": [
        ("delivered", "deliveries received"),
        ("expected", "deliveries expected"),
        ("in_order", "in per-board seq order"),
        ("deliveries_per_s", "deliveries/s"),
        ("p50_ms", "latency p50, ms"),
        ("p99_ms", "latency p99, ms"),
        ("cpu_ms_per_1000", "server CPU per 1,000 deliveries, ms"),
        ("server_cores", "server CPU, cores"),
        ("peak_rss_mb", "server peak RSS, MB"),
        ("generator_cores", "load generator CPU, cores"),
        ("send_lag_p99_ms", "generator send lag behind schedule p99, ms"),
        ("other_cores", "rest of the machine (others, interrupts), cores"),
        ("ops_per_frame", "op entries per ops frame"),
    ],
    "latejoin": [
        ("delivered", "elements received"),
        ("snapshot_frames", "snapshot frames"),
        ("p50_ms", "last snapshot frame after connect p50, ms"),
        ("max_ms", "last snapshot frame after connect max, ms"),
        ("client_cpu_ms", "joining client's own CPU per join p50, ms"),
        ("peak_rss_mb", "server peak RSS, MB"),
    ],
    "idle": [
        ("delivered", "connections open"),
        ("open_s", "time to open them all, s"),
        ("kb_per_conn", "server memory per connection, KB"),
        ("rss_before_mb", "server RSS before, MB"),
        ("rss_open_mb", "server RSS with all open, MB"),
    ],
}
LATENCY_NAME = {"others": "to the other clients", "echo": "ack (own op back)"}
# The figures of each kind summed up under the table as ratios.
HEADLINE = {
    "load": [
        ("cpu_ms_per_1000", "CPU per delivery"),
        ("p99_ms", "latency p99"),
        ("peak_rss_mb", "peak RSS"),
    ],
    "latejoin": [("p50_ms", "join p50"), ("peak_rss_mb", "peak RSS")],
    "idle": [("kb_per_conn", "memory per connection")],
}
MULTI = "-multi"


def median(values: list):
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, bool) for v in present):
        return all(present)
    if all(isinstance(v, int | float) for v in present):
        return statistics.median(present)
    return present[0]


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(ours, base) -> str:
    if isinstance(ours, bool) or not isinstance(ours, int | float):
        return ""
    if not isinstance(base, int | float) or isinstance(base, bool) or not base:
        return ""
    return f"{ours / base:.2f}"


def table(results: dict) -> str:
    """One Markdown table: scenario, figure, ours, baseline, ours / baseline."""
    lines = [
        "| scenario | figure | ours | baseline | ours / baseline |",
        "|---|---|---:|---:|---:|",
    ]
    for name, runs in results.items():
        scenario = scenarios.BY_NAME[name]
        lines.append(f"| **{name}** | target: {scenario.target} | | | |")
        for key, label in ROWS[scenario.kind]:
            if key.startswith("p") and scenario.kind == "load":
                label = label.replace(
                    "latency", f"latency {LATENCY_NAME[scenario.latency]}"
                )
            ours = median([r.get(key) for r in runs["ours"]])
            base = median([r.get(key) for r in runs["baseline"]])
            row = [name, label, cell(ours), cell(base), ratio(ours, base)]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def figure(runs: list, key: str):
    return median([r.get(key) for r in runs])


def ratios(results: dict) -> str:
    """Each scenario's headline figures as ratios to the baseline; a scenario
    on one daphne per core (`-multi`) also to the same load on one daphne."""
    lines = ["Ratios, ours / baseline (and -multi / the one-daphne scenario):"]
    for name, runs in results.items():
        single = name.removesuffix(MULTI) if name.endswith(MULTI) else None
        parts = []
        for key, label in HEADLINE[scenarios.BY_NAME[name].kind]:
            ours = figure(runs["ours"], key)
            text = f"{label} {ratio(ours, figure(runs['baseline'], key)) or '-'}"
            if single in results:
                one = figure(results[single]["ours"], key)
                text += f" ({ratio(ours, one) or '-'} x {single})"
            parts.append(text)
        lines.append(f"- {name}: " + ", ".join(parts))
    return "\n".join(lines)


def run_all(args) -> dict:
    results = {}
    for name in args.scenarios:
        scenario = scenarios.sized(name, args.smoke, args.duration_factor)
        results[name] = {target: [] for target in TARGETS}
        for i in range(args.runs):
            for target in TARGETS if args.baseline else TARGETS[:1]:
                label = f"{name} {target} run {i + 1}/{args.runs}"
                print(
                    f"{time.strftime('%H:%M:%S')} {label} ...",
                    file=sys.stderr,
                    flush=True,
                )
                with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
                    figures = scenarios.run_scenario(
                        scenario, target, Path(tmp), args.procs, args.profile
                    )
                results[name][target].append(figures)
                if not figures["ok"]:
                    print(
                        f"  NOT OK: {json.dumps(figures, default=str)[:1500]}",
                        file=sys.stderr,
                    )
    return results


def save(args, results: dict, text: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = args.output or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    document = {
        "args": vars(args),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg": os.getloadavg(),
        },
        "table": text,
        "results": results,
    }
    path.write_text(json.dumps(document, indent=2, default=str))
    return path


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = ",".join(s.name for s in scenarios.FULL)
    extra = ",".join(s.name for s in scenarios.EXTRA)
    parser.add_argument(
        "--scenarios", default=names, help=f"comma-separated: {names} (also {extra})"
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="alternate K times; medians"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds each")
    parser.add_argument(
        "--duration-factor",
        type=float,
        default=1.0,
        help="multiply every load duration by this",
    )
    parser.add_argument("--output", type=Path, help="write the JSON here")
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy the server processes of load scenarios into this directory",
    )
    parser.add_argument("--procs", type=int, default=2, help="load generator processes")
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the websockets baseline (default yes)",
    )
    args = parser.parse_args(argv)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(scenarios.BY_NAME)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    servers.raise_nofile()
    began = servers.machine_busy_s(), time.monotonic()
    results = run_all(args)
    busy = (servers.machine_busy_s() - began[0]) / (time.monotonic() - began[1])
    minutes = (time.monotonic() - began[1]) / 60
    text = table(results) + "\n\n" + ratios(results)
    print(text)
    print(
        f"\nmachine CPU busy over the whole bench: {busy:.2f} cores of {os.cpu_count()}"
        f"; {minutes:.1f} minutes in all"
    )
    for name, runs in results.items():
        for target, figures in runs.items():
            for f in figures:
                if f.get("notes") and f["notes"].strip():
                    print(f"- {name} {target}: {f['notes'][:600]}")
    print(f"\nwritten to {save(args, results, text)}")
    ok = all(f["ok"] for runs in results.values() for fs in runs.values() for f in fs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
