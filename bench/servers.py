"""The servers a bench scenario runs against, all real, all on loopback.

Each is a context manager that starts the real program on a free 127.0.0.1 port
and stops it with SIGTERM: daphne on a throwaway site (SQLite or PostgreSQL,
in-memory or Redis channel layer), the `websockets` baseline, redis-server, a
throwaway PostgreSQL cluster (as scripts/with-services.sh makes one) and nginx
with `least_conn` in front of several daphnes. `probe` reads a set of server
processes' CPU time and memory from /proc.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass
class Proc:
    """A server process of ours and where its output goes."""

    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_nofile() -> None:
    """Allow as many open files as the hard limit (the idle scenario needs 5,000+)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wait_for_port(server: Proc, timeout: float = 60) -> None:
    """Poll until the server accepts connections, failing fast if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.proc.args[:3]} exited: {server.tail()}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on {server.port}: {server.tail()}")


def stop(server: Proc, sig: int = signal.SIGTERM) -> None:
    """SIGTERM, as a supervisor would; SIGKILL if it does not go within 20 s."""
    if server.proc.poll() is None:
        server.proc.send_signal(sig)
    try:
        server.proc.wait(20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@contextlib.contextmanager
def started(command: list[str], log: Path, env=None, port: int = 0, sig=signal.SIGTERM):
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_nofile,
        )
    server = Proc(proc, port, log)
    try:
        if port:
            wait_for_port(server)
        yield server
    finally:
        stop(server, sig)


# -- our server ---------------------------------------------------------------------


def site_env(tmp: Path, database_url: str | None, redis_url: str | None, extra=None):
    """The site's settings: its own database, no DEBUG, the given channel layer."""
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="bench-not-secret",
        DATABASE_URL=database_url or f"sqlite:///{tmp}/bench.sqlite3",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONPATH=str(BENCH),
        # Every bench client comes from 127.0.0.1 (the idle scenario: 5,000).
        WHITEBOARD_MAX_CONNECTIONS_PER_ADDRESS="1000000",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra or {})
    return env


def prepare_site(env: dict, slugs: list[str], populate: dict | None = None) -> None:
    """Migrate, create the boards, and fill any the scenario wants full."""
    command = [sys.executable, str(BENCH / "populate.py"), "--boards", *slugs]
    if populate:
        command += ["--elements", *(f"{slug}:{n}" for slug, n in populate.items())]
    run(command, env)


def run(command: list[str], env: dict) -> None:
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise RuntimeError(f"{' '.join(command[:3])} exited {done.returncode}")


def daphne(env: dict, log: Path):
    """One daphne process on a free port, serving the site in `env`."""
    port = free_port()
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    return started([*command, "config.asgi:application"], log, env, port)


def baseline(log: Path, populate: dict | None = None):
    port = free_port()
    command = [sys.executable, str(BENCH / "baseline.py"), "--port", str(port)]
    for slug, count in (populate or {}).items():
        command += ["--populate", f"{slug}:{count}"]
    return started(command, log, None, port)


# -- the services ---------------------------------------------------------------------


@contextlib.contextmanager
def redis(tmp: Path):
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no"]
    with started(command, tmp / "redis.log", None, port) as server:
        yield server, f"redis://127.0.0.1:{port}/0"


@contextlib.contextmanager
def postgres(tmp: Path):
    """A throwaway cluster, as scripts/with-services.sh makes one."""
    bins = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name
    )
    if not bins:
        raise RuntimeError("PostgreSQL is not installed (scripts/system-deps.sh test)")
    pg_bin, data = bins[-1], Path(tempfile.mkdtemp(prefix="wb-bench-pg-"))
    data.chmod(0o755)
    as_pg = []
    if os.getuid() == 0:
        shutil.chown(data, "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
    run(
        [*as_pg, str(pg_bin / "initdb"), "-D", f"{data}/d", "-U", "whiteboard"]
        + ["-A", "trust", "-E", "UTF8"],
        None,
    )
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -c max_connections=300 -k {data}"
    command = [*as_pg, str(pg_bin / "postgres"), "-D", f"{data}/d", "-p", str(port)]
    command += options.split()
    try:
        # SIGINT: PostgreSQL's fast shutdown (SIGTERM waits for every session).
        log = tmp / "postgres.log"
        with started(command, log, None, port, signal.SIGINT) as server:
            yield server, f"postgres://whiteboard@127.0.0.1:{port}/postgres"
    finally:
        shutil.rmtree(data, ignore_errors=True)


NGINX_CONF = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 20000; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream whiteboard {{
        least_conn;
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location /ws/ {{
            proxy_pass http://whiteboard;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            # With the port: nginx listens on a random one here, and the
            # server matches the Origin's port against the Host's.
            proxy_set_header Host $http_host;
            proxy_read_timeout 120s;
        }}
    }}
}}
"""


def nginx(tmp: Path, upstream_ports: list[int]):
    """nginx in the foreground with docs/deploy.md's WebSocket proxy settings."""
    port = free_port()
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstream_ports)
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, servers=servers))
    command = [NGINX, "-c", str(conf), "-p", str(tmp), "-g", "daemon off;"]
    return started(command, tmp / "nginx.log", None, port)


# -- measuring ---------------------------------------------------------------------


def probe(pids: list[int]) -> dict:
    """CPU seconds per process, and current and peak RSS (MB) summed over them."""
    sample = {"t_ns": time.time_ns(), "cpu": {}, "rss_mb": 0.0, "hwm_mb": 0.0}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            status = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        memory = dict(line.split(":", 1) for line in status if line.startswith("Vm"))
        sample["cpu"][pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        sample["rss_mb"] += int(memory["VmRSS"].split()[0]) / 1024
        sample["hwm_mb"] += int(memory["VmHWM"].split()[0]) / 1024
    return sample


def cpu_between(start: dict | None, end: dict | None) -> float:
    """Server CPU seconds between two probes (a process born between counts whole)."""
    if not (start and end):
        return 0.0
    return sum(cpu - start["cpu"].get(pid, 0.0) for pid, cpu in end["cpu"].items())


def with_children(pids: list[int]) -> list[int]:
    """These processes and their descendants (PostgreSQL backends, nginx workers)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            text = stat.read_text()
            parents[int(stat.parent.name)] = int(
                text[text.rindex(")") + 2 :].split()[1]
            )
    found, todo = set(pids), list(pids)
    while todo:
        parent = todo.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                todo.append(pid)
    return sorted(found)


def established(ports: list[int]) -> list[int]:
    """Open TCP connections accepted on each of these loopback ports."""
    counts = dict.fromkeys(ports, 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                port = int(local.rsplit(":", 1)[1], 16)
                if state == "01" and port in counts:
                    counts[port] += 1
    return [counts[p] for p in ports]


def py_spy(pids: list[int], out: Path, seconds: float) -> list[subprocess.Popen]:
    """Sample the Python server processes among `pids` for `seconds` (raw stacks).

    Raw (collapsed) stacks, one file per process; `bench/profile.py` sums them
    into the top frames. --nonblocking: the server is never paused to be read;
    --gil: only samples holding the GIL, i.e. Python CPU time, not waits.
    """
    spy = Path(sys.executable).parent / "py-spy"
    procs = []
    for pid in pids:
        if "python" not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
            continue
        target = out.with_suffix(f".{pid}.txt")
        command = [str(spy), "record", "--nonblocking", "--gil", "-f", "raw"]
        command += ["-r", "200"]
        command += ["-d", str(max(1, int(seconds))), "-o", str(target), "-p", str(pid)]
        procs.append(
            subprocess.Popen(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
    return procs


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy since boot (interrupts included)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields)
    return (user + nice + system + steal + irq + softirq) / CLOCK_TICKS
