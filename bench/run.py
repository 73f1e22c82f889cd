"""Run the load generator against a fresh daphne server and report the figures.

Each run builds a throwaway site in a temporary directory (SQLite, the in-memory
channel layer: the embedded defaults), starts one real daphne on a free loopback
port, loads it with bench/loadgen.py, and samples the server's CPU time and peak
memory from /proc over exactly the measured phase. The exit status says whether
every op reached every client in seq order; it never depends on timing.

    .venv/bin/python bench/run.py --clients 50 --rate 10 --duration 20 --procs 2
    .venv/bin/python bench/run.py --runs 3            # medians over three servers
    .venv/bin/python bench/run.py --url ws://127.0.0.1:8000/ws/boards/demo/
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import report
from loadgen import add_arguments, config_from, run_load

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BASELINE = {"clients": 2, "rate": 2.0, "duration": 5.0}


@dataclass
class Server:
    """A daphne process of our own, and what we learned when stopping it."""

    proc: subprocess.Popen
    port: int
    log: Path
    stopped: dict = field(default_factory=dict)


# -- the server ------------------------------------------------------------------


def free_port() -> int:
    """A port the kernel just had free; daphne binds it a moment later."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(tmp: Path) -> dict:
    """The embedded defaults, plus a database of this run's own."""
    env = dict(os.environ)
    env.pop("REDIS_URL", None)  # the in-memory channel layer, by design
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="bench-not-secret",
        DATABASE_URL=f"sqlite:///{tmp}/bench.sqlite3",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    return env


def manage(env: dict, *args: str) -> None:
    """Run a management command; its output is shown only when it fails."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise RuntimeError(f"manage.py {' '.join(args)} exited {done.returncode}")


def wait_for_port(server: Server, timeout: float) -> None:
    """Poll until daphne accepts connections, failing fast if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"daphne exited {server.proc.returncode}: {tail(server)}"
            )
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            return
        time.sleep(0.05)
    raise RuntimeError(f"daphne did not listen within {timeout}s: {tail(server)}")


def stop(server: Server) -> None:
    """SIGTERM, as a supervisor would, and note how the server took it."""
    began = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
        server.stopped["killed"] = True
    server.stopped["exit_code"] = server.proc.returncode
    server.stopped["stop_s"] = round(time.monotonic() - began, 2)


@contextlib.contextmanager
def daphne(tmp: Path, slug: str):
    """A migrated site with one public board, served by one daphne process."""
    env = server_env(tmp)
    manage(env, "migrate", "--noinput")
    manage(env, "createboard", slug, "--title", "Bench")
    log = tmp / "daphne.log"
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1"]
    port = free_port()
    command += ["-p", str(port), "config.asgi:application"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out)
        server = Server(proc, port, log)
        try:
            wait_for_port(server, timeout=60)
            yield server
        finally:
            stop(server)


def tail(server: Server, lines: int = 30) -> str:
    return "\n".join(server.log.read_text(errors="replace").splitlines()[-lines:])


# -- measuring it ----------------------------------------------------------------


def machine_busy_s() -> dict:
    """CPU seconds the whole machine has spent busy since boot, by whom.

    Interrupt time is kept apart: loopback networking is mostly softirq time that
    no process is charged for, and it grows with the load itself.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields)
    return {
        "tasks": (user + nice + system + steal) / CLOCK_TICKS,
        "irq": (irq + softirq) / CLOCK_TICKS,
    }


def probe(pid: int | None) -> dict:
    """The machine's busy CPU time, and the CPU time and memory of one process.

    The process fields are missing when it is gone: a server that died mid-run is
    reported by the generator's figures, not by a crash of the bench.
    """
    sample = {"t_ns": time.time_ns(), "machine_busy_s": machine_busy_s()}
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return sample
    fields = stat[stat.rindex(")") + 2 :].split()
    memory = dict(line.split(":", 1) for line in status if line.startswith("Vm"))
    sample["cpu_s"] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    sample["rss_mb"] = int(memory["VmRSS"].split()[0]) / 1024
    sample["hwm_mb"] = int(memory["VmHWM"].split()[0]) / 1024
    return sample


def machine_figures(summary: dict) -> dict:
    """Busy cores of the whole machine over the phase, and those neither the server
    nor the generator used: a shared machine's neighbours show up here."""
    probes = summary["phases"].get("probes") or {}
    start, end = probes.get("start"), probes.get("end")
    if not (start and end):
        return {}
    wall_s = (end["t_ns"] - start["t_ns"]) / 1e9
    before, after = start["machine_busy_s"], end["machine_busy_s"]
    tasks = report.ratio(after["tasks"] - before["tasks"], wall_s)
    irq = report.ratio(after["irq"] - before["irq"], wall_s)
    ours = (summary["generator"]["cores"] or 0) + (
        (summary.get("server") or {}).get("cores") or 0
    )
    return {
        "busy_cores": round(tasks + irq, 3),
        "irq_cores": irq,
        "other_cores": round(max(0.0, tasks - ours), 3),
    }


def server_figures(server: Server, phases: dict) -> dict:
    """Server CPU over the measured phase, in seconds and in cores, and its memory."""
    probes = phases.get("probes") or {}
    start, end = probes.get("start"), probes.get("end")
    text = server.log.read_text(errors="replace")
    figures = {
        "stopped": server.stopped,
        "tracebacks": text.count("Traceback"),
        "log_tail": tail(server),
    }
    if start and end and "cpu_s" in start and "cpu_s" in end:
        cpu_s = end["cpu_s"] - start["cpu_s"]
        wall_s = (end["t_ns"] - start["t_ns"]) / 1e9
        figures["cpu_s"] = round(cpu_s, 2)
        figures["cores"] = report.ratio(cpu_s, wall_s)
        figures["rss_idle_mb"] = round(start["rss_mb"], 1)
        figures["peak_rss_mb"] = round(end["hwm_mb"], 1)
    return figures


def server_rows(summaries: list[dict]) -> list[tuple[str, list]]:
    def pick(key: str):
        return lambda s: (s.get("server") or {}).get(key)

    def per_delivery(s: dict):
        cpu_s, received = pick("cpu_s")(s), s["deliveries"]["received"]
        return report.ratio(cpu_s * 1e6, received) if cpu_s is not None else None

    return [
        ("server CPU, s", [pick("cpu_s")(s) for s in summaries]),
        ("server CPU per 1000 deliveries, ms", [per_delivery(s) for s in summaries]),
        ("server CPU, cores", [pick("cores")(s) for s in summaries]),
        ("server RSS before load, MB", [pick("rss_idle_mb")(s) for s in summaries]),
        ("server peak RSS (VmHWM), MB", [pick("peak_rss_mb")(s) for s in summaries]),
        ("server tracebacks in log", [pick("tracebacks")(s) for s in summaries]),
    ]


def machine_rows(summaries: list[dict], server: bool) -> list[tuple[str, list]]:
    def pick(key: str) -> list:
        return [s["machine"].get(key) for s in summaries]

    ours = "server, generator" if server else "generator"
    return [
        ("machine CPU busy, cores (everything)", pick("busy_cores")),
        ("of which interrupts (loopback network), cores", pick("irq_cores")),
        (f"of which other processes (not {ours}), cores", pick("other_cores")),
    ]


# -- runs ------------------------------------------------------------------------


def run_once(args: argparse.Namespace) -> dict:
    """One scenario: against --url as given, or against a server of our own."""
    if args.url:
        summary = measure(args, args.url, args.origin, lambda name: probe(None))
    else:
        with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
            with daphne(Path(tmp), args.slug) as server:
                url = f"ws://127.0.0.1:{server.port}/ws/boards/{args.slug}/"
                pid = server.proc.pid
                summary = measure(args, url, None, lambda name: probe(pid))
            summary["server"] = server_figures(server, summary["phases"])
    summary["machine"] = machine_figures(summary)
    add_cores_per_second(summary)
    return summary


def add_cores_per_second(summary: dict) -> None:
    """Put the server's and the machine's CPU beside each second of latencies."""
    probes = summary["phases"].get("probes") or {}
    seconds = list(itertools.pairwise([probes.get("start"), *probes.get("ticks", [])]))
    for entry in summary["timeline"]:
        if entry["t"] >= len(seconds):
            break
        before, after = seconds[entry["t"]]
        wall_s = (after["t_ns"] - before["t_ns"]) / 1e9
        busy_s = sum(after["machine_busy_s"].values()) - sum(
            before["machine_busy_s"].values()
        )
        entry["machine_cores"] = report.ratio(busy_s, wall_s)
        if "cpu_s" in before and "cpu_s" in after:
            server_s = after["cpu_s"] - before["cpu_s"]
            entry["server_cores"] = report.ratio(server_s, wall_s)


def measure(args: argparse.Namespace, url: str, origin: str | None, on_phase=None):
    """The baseline (if asked for), then the scenario, on the same server.

    The baseline is a light load that shows what one quiet user sees from this
    server on this machine; the scenario's latencies are then also read as
    multiples of it, which travel between machines better than milliseconds.
    """
    cfg = config_from(args, url, origin)
    baseline = None
    if args.baseline:
        light = replace(cfg, **BASELINE, procs=1, token=cfg.token + "b")
        baseline = run_load(light)
    summary = run_load(cfg, on_phase=on_phase)
    if baseline is not None:
        summary["baseline"] = {
            "scenario": BASELINE,
            "passed": report.passed(baseline),
            "latency_ms": baseline["latency_ms"]["others"],
        }
    return summary


def baseline_rows(summaries: list[dict]) -> list[tuple[str, list]]:
    """The baseline's latencies and the scenario's as multiples of them."""

    def pick(p: str, divide: bool):
        def value(s: dict):
            base = s["baseline"]["latency_ms"][p]
            return report.ratio(s["latency_ms"]["others"][p], base) if divide else base

        return [value(s) for s in summaries]

    light = "{clients} clients x {rate:g} ops/s x {duration:g} s".format(**BASELINE)
    return [
        (f"baseline ({light}) p50, ms", pick("p50", False)),
        ("baseline p99, ms", pick("p99", False)),
        ("p50 / baseline p50", pick("p50", True)),
        ("p99 / baseline p99", pick("p99", True)),
    ]


def save(args: argparse.Namespace, summaries: list[dict], table: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    document = {
        "args": vars(args),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg": os.getloadavg(),
        },
        "table": table,
        "runs": summaries,
    }
    path.write_text(json.dumps(document, indent=2, default=str))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--runs", type=int, default=1, help="report medians of K")
    parser.add_argument("--url", help="load this running server instead")
    parser.add_argument("--origin", help="with --url; default http://HOST:PORT")
    parser.add_argument("--slug", default="bench", help="board to create and load")
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="first run a light load on the same server to compare against",
    )
    args = parser.parse_args(argv)
    summaries = []
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs} ...", file=sys.stderr, flush=True)
        summaries.append(run_once(args))
    rows = report.load_rows(summaries)
    if args.baseline:
        rows += baseline_rows(summaries)
    if not args.url:
        rows += server_rows(summaries)
    rows += machine_rows(summaries, server=not args.url)
    table = report.markdown_table(rows)
    print(table)
    print(report.notes(summaries) or "- no warnings, deviations or unexpected closes")
    print(f"\nwritten to {save(args, summaries, table).relative_to(REPO)}")
    return 0 if all(report.passed(s) for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
