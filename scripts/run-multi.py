#!/usr/bin/env python3
"""One daphne per core behind nginx, with Redis, on this machine (`make run-multi`).

Migrates the database, creates the `demo` board, then starts and supervises:

- N daphne processes (N = the cores this process may use, or --workers), each on
  its own loopback port (PORT+1 ... PORT+N unless --daphne-ports names them),
  with the flags of docs/deploy.md, section 3;
- a redis-server on loopback in this run's temporary directory, unless
  REDIS_URL is set: every daphne gets REDIS_URL, so the channel layer and the
  abuse-limit counters are shared;
- nginx on HOST:PORT (default 127.0.0.1:8000), `least_conn` over the daphnes,
  with the WebSocket proxy settings of docs/deploy.md (deploy/nginx/whiteboard.conf).

The database is DATABASE_URL, or the same SQLite file as `make run`: every
process opens it in WAL mode with IMMEDIATE transactions and a 20 s busy
timeout (config/settings.py), so writers queue for its one lock instead of
failing, and seqs stay one sequence per board. PostgreSQL lets them write side
by side; set DATABASE_URL for it.

Ctrl-C, SIGTERM or SIGHUP stops everything in order: the daphnes first (each
commits what it received and sends `bye` + 1012 through nginx, docs/deploy.md
"Graceful stop"), then nginx, then our redis-server. A second signal kills what
is left. Every line a child prints is prefixed with its name.

    .venv/bin/python scripts/run-multi.py [--workers N] [--host H] [--port P]
        [--daphne-ports P1,P2,...] [--redis-port P] [--print-nginx-conf]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
START_SECONDS = 60
# daphne's graceful stop takes at most about 5 s (docs/deploy.md); systemd's
# TimeoutStopSec in deploy/whiteboard@.service leaves the same margin.
STOP_SECONDS = 30
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1

NGINX_CONF = """\
# Written by scripts/run-multi.py for one run. The proxy settings are those of
# docs/deploy.md, section 5, and deploy/nginx/whiteboard.conf.
worker_processes 1;
worker_rlimit_nofile {nofile};
pid {run}/nginx.pid;
error_log stderr warn;
events {{ worker_connections {connections}; }}
http {{
    client_body_temp_path {run}/nginx-body;
    proxy_temp_path {run}/nginx-proxy;
    fastcgi_temp_path {run}/nginx-fastcgi;
    uwsgi_temp_path {run}/nginx-uwsgi;
    scgi_temp_path {run}/nginx-scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    # The request line without its query string (share links carry a key).
    log_format whiteboard '$remote_addr - $remote_user [$time_local] '
                          '"$request_method $uri $server_protocol" $status '
                          '$body_bytes_sent "$http_user_agent" -> $upstream_addr';
    access_log {run}/nginx-access.log whiteboard;

    upstream whiteboard {{
        # WebSockets live long: send each new one to the least busy process.
        least_conn;
        zone whiteboard 64k;
{servers}
    }}

    server {{
        listen {listen};
        client_max_body_size 11m;

        location /ws/ {{
            proxy_pass http://whiteboard;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            # $http_host keeps the port: the Origin check compares it.
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 120s;
        }}

        # Prometheus scrapes a daphne itself (docs/operations.md).
        location = /metrics {{
            return 404;
        }}

        location / {{
            proxy_pass http://whiteboard;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


class Failed(Exception):
    """Something could not start; the message says what to do."""


# -- the settings of one run --------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WORKERS") or len(os.sched_getaffinity(0))),
        help="daphne processes (default: WORKERS, else the number of cores)",
    )
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    parser.add_argument(
        "--daphne-ports",
        default=os.environ.get("DAPHNE_PORTS", ""),
        help="comma-separated loopback ports, one per daphne; their count is the "
        "number of workers (default: PORT+1 ... PORT+WORKERS)",
    )
    parser.add_argument(
        "--redis-port",
        type=int,
        default=int(os.environ.get("REDIS_PORT") or 0),
        help="port of our redis-server when REDIS_URL is unset (default: a free one)",
    )
    parser.add_argument(
        "--print-nginx-conf",
        action="store_true",
        help="print the nginx configuration this run would use, and exit",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.daphne_ports:
        args.daphne_ports = [int(p) for p in args.daphne_ports.split(",") if p.strip()]
        args.workers = len(args.daphne_ports)
    else:
        args.daphne_ports = [args.port + i for i in range(1, args.workers + 1)]
    return args


def nginx_conf(run: Path, listen: str, ports: list[int], nofile: int) -> str:
    servers = "\n".join(f"        server 127.0.0.1:{port};" for port in ports)
    return NGINX_CONF.format(
        run=run,
        listen=listen,
        servers=servers,
        nofile=nofile,
        connections=max(512, min(nofile - 64, 16384)),
    )


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def probe_host(host: str) -> str:
    """Where to connect to see whether a server listening on `host` is up."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def daphne_command(port: int) -> list[str]:
    """deploy/whiteboard@.service's command line, the port being the instance.

    A WHITEBOARD_MAX_FRAME_BYTES above 256 KiB raises daphne's ceilings to four
    times it, as docs/deploy.md (section 3) says.
    """
    try:
        frame = int(os.environ.get("WHITEBOARD_MAX_FRAME_BYTES") or 262144)
    except ValueError:
        frame = 262144  # the settings refuse it at start, with the reason
    ceiling = max(1048576, 4 * frame)
    larger = ["--websocket-max-frame-size", str(ceiling)] if ceiling > 1048576 else []
    return [
        *(PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)),
        *("--websocket-max-message-size", str(ceiling), *larger),
        *("--websocket_timeout", "-1"),
        "--proxy-headers",
        "config.asgi:application",
    ]


def describe_database() -> str:
    """Which database every process will use; refuse one they cannot share."""
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        return f"SQLite {ROOT / 'db.sqlite3'} (set DATABASE_URL for PostgreSQL)"
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        if ":memory:" in url or parts.path in ("", "/"):
            raise Failed(
                "an in-memory SQLite database is private to one process: "
                "set DATABASE_URL to a file (sqlite:////path/db.sqlite3) or PostgreSQL"
            )
        return f"SQLite {parts.path[1:]}"
    where = f"{parts.hostname}:{parts.port or 5432}{parts.path}"
    return f"{parts.scheme} {where}"


def check_free(host: str, ports: list[int]) -> None:
    for port in ports:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family) as sock:
            # As the servers bind: closed connections (TIME_WAIT) do not count.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise Failed(
                    f"cannot listen on {listen_address(host, port)} ({exc.strerror}): "
                    "choose other ports with PORT= (nginx) or DAPHNE_PORTS="
                )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def program(name: str, package: str) -> str:
    """The path of a system program, or the apt-get line that installs it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found:
        return found
    raise Failed(
        f"{name} is not installed: sudo apt-get install {package} "
        "(scripts/system-deps.sh test installs it too)"
    )


def raise_nofile() -> int:
    """Each WebSocket is a file descriptor in daphne and two in nginx."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


# -- the children -------------------------------------------------------------------


def die_with_parent(parent: int):
    """A child that outlives a killed supervisor gets SIGTERM (Linux only)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None

    def in_child() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


@dataclass
class Child:
    name: str
    kind: str  # redis, daphne, nginx
    proc: subprocess.Popen
    pending: bytes = b""


class Supervisor:
    """The children, their output, and the signals that stop them.

    One thread: `pump` waits on every child's output pipe and on the signal
    wake-up socket at once, so output keeps flowing while we wait for ports,
    for signals and for the children to exit.
    """

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.selector = selectors.DefaultSelector()
        self.signals: list[int] = []
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno())
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        for sig in STOP_SIGNALS:
            signal.signal(sig, self.on_signal)

    def on_signal(self, signum, _frame) -> None:
        self.signals.append(signum)

    def say(self, text: str) -> None:
        self.write("run-multi", text.encode() + b"\n")

    @staticmethod
    def write(name: str, lines: bytes) -> None:
        prefix = f"{name:<12}| ".encode()
        out = b"".join(prefix + line + b"\n" for line in lines.splitlines())
        sys.stdout.buffer.write(out)
        sys.stdout.buffer.flush()

    def start(self, name: str, kind: str, command: list[str], env=None) -> Child:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Not in our process group: a Ctrl-C reaches us alone, and we
            # stop the children in order (daphnes before nginx).
            start_new_session=True,
            preexec_fn=die_with_parent(os.getpid()),
        )
        child = Child(name, kind, proc)
        os.set_blocking(proc.stdout.fileno(), False)
        self.selector.register(proc.stdout, selectors.EVENT_READ, child)
        self.children.append(child)
        self.say(f"started {name} (pid {proc.pid}): {' '.join(command[:8])} ...")
        return child

    def pump(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    self.wake_r.recv(4096)
                continue
            self.read(key.fileobj, key.data)

    def read(self, pipe, child: Child) -> None:
        try:
            data = os.read(pipe.fileno(), 65536)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(pipe)
            if child.pending:
                self.write(child.name, child.pending)
            return
        whole, newline, child.pending = (child.pending + data).rpartition(b"\n")
        if newline:
            self.write(child.name, whole)

    def wait_listening(self, child: Child, host: str, port: int) -> None:
        """Until `child` accepts connections on the port; fail fast if it exits."""
        deadline = time.monotonic() + START_SECONDS
        while True:
            if self.signals:
                raise Failed("stopped before everything had started")
            if child.proc.poll() is not None:
                raise Failed(f"{child.name} exited with {child.proc.returncode}")
            with contextlib.suppress(OSError):
                socket.create_connection((probe_host(host), port), timeout=1).close()
                return
            if time.monotonic() > deadline:
                raise Failed(
                    f"{child.name} did not listen on {port} in {START_SECONDS} s"
                )
            self.pump(0.1)

    def run_until_stopped(self) -> bool:
        """Serve until a stop signal (True) or until a child exits (False)."""
        while not self.signals:
            self.pump(1.0)
            for child in self.children:
                if child.proc.poll() is not None:
                    self.say(
                        f"{child.name} exited with {child.proc.returncode}: "
                        "stopping the others"
                    )
                    return False
        self.say(f"got {signal.Signals(self.signals[0]).name}: stopping")
        return True

    def stop_all(self) -> None:
        """daphnes first (bye + 1012 through nginx), then nginx, then Redis."""
        for kind, sig in (
            ("daphne", signal.SIGTERM),
            ("nginx", signal.SIGTERM),
            ("redis", signal.SIGTERM),
        ):
            self.stop(kind, sig)
        # The last lines of every child's output.
        deadline = time.monotonic() + 2
        while len(self.selector.get_map()) > 1 and time.monotonic() < deadline:
            self.pump(0.1)

    def stop(self, kind: str, sig: int) -> None:
        group = [c for c in self.children if c.kind == kind]
        seen = len(self.signals)
        for child in group:
            if child.proc.poll() is None:
                child.proc.send_signal(sig)
        deadline = time.monotonic() + STOP_SECONDS
        while any(c.proc.poll() is None for c in group):
            if time.monotonic() > deadline or len(self.signals) > seen:
                self.say(f"killing what is left of {kind} (SIGKILL)")
                for child in group:
                    with contextlib.suppress(ProcessLookupError):
                        child.proc.kill()
                for child in group:
                    child.proc.wait()
                break
            self.pump(0.1)
        for child in group:
            self.say(f"{child.name} stopped ({child.proc.wait()})")


# -- one run ------------------------------------------------------------------------


def prepare_site(env: dict) -> None:
    """Migrate and create the demo board, as `make run` does."""
    for args in (
        ["migrate", "--noinput"],
        ["createboard", "demo", "--title", "Demo board", "--exist-ok"],
    ):
        done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=env)
        if done.returncode != 0:
            raise Failed(f"manage.py {args[0]} failed ({done.returncode})")


def start_redis(sup: Supervisor, run: Path, port: int) -> str:
    binary = program("redis-server", "redis-server")
    port = port or free_port()
    check_free("127.0.0.1", [port])
    command = [binary, "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--dir", str(run)]
    command += ["--loglevel", "warning"]
    redis = sup.start(f"redis-{port}", "redis", command)
    sup.wait_listening(redis, "127.0.0.1", port)
    return f"redis://127.0.0.1:{port}/0"


def start_daphnes(sup: Supervisor, env: dict, ports: list[int]) -> None:
    daphnes = [
        sup.start(f"daphne-{p}", "daphne", daphne_command(p), env) for p in ports
    ]
    for daphne, port in zip(daphnes, ports, strict=True):
        sup.wait_listening(daphne, "127.0.0.1", port)


def start_nginx(sup: Supervisor, run: Path, args, nofile: int) -> None:
    binary = program("nginx", "nginx")
    conf = run / "nginx.conf"
    listen = listen_address(args.host, args.port)
    conf.write_text(nginx_conf(run, listen, args.daphne_ports, nofile))
    command = [binary, "-e", "stderr", "-p", str(run), "-c", str(conf)]
    nginx = sup.start(f"nginx-{args.port}", "nginx", [*command, "-g", "daemon off;"])
    sup.wait_listening(nginx, args.host, args.port)


def start_all(sup: Supervisor, args, run: Path) -> str:
    """Everything, in order; returns what to tell the user about the setup."""
    database = describe_database()
    check_free(args.host, [args.port])
    check_free("127.0.0.1", args.daphne_ports)
    program("nginx", "nginx")
    nofile = raise_nofile()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # The daphnes share one metrics directory, fresh for each run, so that
    # /metrics of any of them answers for all (docs/operations.md).
    env.setdefault("WHITEBOARD_METRICS_DIR", str(run / "metrics"))
    prepare_site(env)
    redis = f"REDIS_URL ({urlsplit(env.get('REDIS_URL', '')).netloc.split('@')[-1]})"
    if not env.get("REDIS_URL"):
        env["REDIS_URL"] = start_redis(sup, run, args.redis_port)
        redis = f"{env['REDIS_URL']} (ours, in {run})"
    start_daphnes(sup, env, args.daphne_ports)
    start_nginx(sup, run, args, nofile)
    return f"database: {database}; channel layer: Redis at {redis}"


def serve(args, run: Path) -> int:
    sup = Supervisor()
    try:
        try:
            setup = start_all(sup, args, run)
        except Failed as exc:
            sup.say(f"error: {exc}")
            return 0 if sup.signals else 1
        base = f"http://{listen_address(args.host, args.port)}"
        ports = ", ".join(map(str, args.daphne_ports))
        sup.say(setup)
        sup.say(f"{args.workers} daphnes on 127.0.0.1 ports {ports}, nginx on {base}")
        first = args.daphne_ports[0]
        sup.say(f"metrics of all {args.workers}: http://127.0.0.1:{first}/metrics")
        sup.say(f"ready: open {base}/ and draw on {base}/b/demo/ (Ctrl-C stops)")
        return 0 if sup.run_until_stopped() else 1
    finally:
        sup.stop_all()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.print_nginx_conf:
        listen = listen_address(args.host, args.port)
        run = Path("/run/whiteboard-multi")
        sys.stdout.write(nginx_conf(run, listen, args.daphne_ports, 65536))
        return 0
    run = Path(tempfile.mkdtemp(prefix="whiteboard-multi-"))
    # nginx's workers drop root and must reach their temporary directories.
    run.chmod(0o755)
    try:
        return serve(args, run)
    finally:
        shutil.rmtree(run, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
