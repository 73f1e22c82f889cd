"""Real servers on loopback for the tests: daphne, runserver and redis-server.

Nothing here is a stand-in: each server is the program an operator runs, started
as a subprocess on a free 127.0.0.1 port and stopped with a real signal.
"""

import contextlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from contextlib import closing
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
START_TIMEOUT = 30
LISTENING = b"Listening on TCP address"


def free_port():
    """A free loopback port for a server of a test.

    `make test` runs its two passes side by side and gives each its own
    TEST_PORT_RANGE ("low-high", below the kernel's ephemeral ports): a port
    one pass picked is never taken by the other pass, nor by an outgoing
    connection, before its server binds it, or while a test restarts a
    server on the same port. Without it: any free port.
    """
    span = os.environ.get("TEST_PORT_RANGE")
    if not span:
        with closing(socket.socket()) as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    low, high = (int(part) for part in span.split("-"))
    for _ in range(1000):
        port = random.randint(low, high)
        with closing(socket.socket()) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in TEST_PORT_RANGE {span}")


class Output:
    """A server's combined output, copied to a log file as it comes.

    `ready` is set when the line saying the server listens appears (or when the
    output ends, i.e. the process died), so a test waits for that event instead
    of polling the port.
    """

    def __init__(self, process, log_path, marker):
        self.process = process
        self.log_path = log_path
        self.marker = marker
        self.ready = threading.Event()
        self.copier = threading.Thread(target=self.copy, daemon=True)
        self.copier.start()

    def copy(self):
        with open(self.log_path, "ab") as log:
            for line in self.process.stdout:
                log.write(line)
                log.flush()
                if self.marker in line:
                    self.ready.set()
        self.ready.set()

    def wait_ready(self, timeout=START_TIMEOUT):
        if not self.ready.wait(timeout):
            raise RuntimeError(f"no {self.marker!r} after {timeout} s")
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited with {self.process.returncode}")

    def close(self):
        """Once the process has ended: the whole output is in the log."""
        self.copier.join(10)


def start_process(command, log_path, marker, **options):
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **options
    )
    output = Output(process, log_path, marker)
    output.wait_ready()
    return process, output


def base_env(database_url, **extra):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "WHITEBOARD_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_SECRET_KEY="live-tests-not-secret",
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        # Plain http on loopback: the documented opt-out of Secure cookies
        # (a browser would not send them back over http).
        DJANGO_SECURE_COOKIES="0",
        DATABASE_URL=database_url,
        PYTHONUNBUFFERED="1",
        # daphne logs "Listening on TCP address" once the port accepts.
        DAPHNE_LOG_LEVEL="INFO",
        # Live tests log in many times from 127.0.0.1, and behind Redis every
        # server of the session counts together; a test of the limit sets its own.
        WHITEBOARD_LOGIN_RATE="1000/m",
        WHITEBOARD_SIGNUP_RATE="1000/m",
        # No thumbnail worker (a Python process of its own, set up and
        # rendering every 10 s) beside each live server: on two cores it
        # slowed the timing-sensitive tests. The thumbnail test turns it on.
        WHITEBOARD_THUMBNAIL_SECONDS="0",
    )
    env.update({key: str(value) for key, value in extra.items() if value is not None})
    return env


def manage(env, *args):
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


class Database:
    """A migrated database for live servers: a SQLite file or a PostgreSQL DB.

    `server_url` names the PostgreSQL server to create it on (e.g. a
    `PostgresServer` of the test's own); by default DATABASE_URL's, if any.
    """

    def __init__(self, tmp_dir, server_url=None):
        if server_url is None:
            server_url = os.environ.get("DATABASE_URL", "")
        if server_url.startswith(("postgres://", "postgresql://")):
            self.url = self._create_postgres(server_url)
        else:
            self.url = f"sqlite:///{Path(tmp_dir) / 'live.sqlite3'}"
        manage(base_env(self.url), "migrate", "--noinput")

    @staticmethod
    def _create_postgres(server_url):
        import psycopg

        name = f"wb_live_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return urlsplit(server_url)._replace(path=f"/{name}").geturl()

    def create_user(self, username, password, superuser=False):
        """An account on this database (the password travels in the environment)."""
        create = "create_superuser" if superuser else "create_user"
        code = (
            "import os; from django.contrib.auth import get_user_model; "
            f"get_user_model().objects.{create}("
            "os.environ['LIVE_USERNAME'], password=os.environ['LIVE_PASSWORD'])"
        )
        env = base_env(self.url, LIVE_USERNAME=username, LIVE_PASSWORD=password)
        manage(env, "shell", "-c", code)
        return username

    def create_board(self, slug=None, *extra):
        slug = slug or f"b-{uuid.uuid4().hex[:10]}"
        manage(base_env(self.url), "createboard", slug, *extra)
        return slug


class Server:
    """One server process (daphne by default) on a free loopback port."""

    def __init__(self, database, tmp_dir, *, redis_url=None, runserver=False, **env):
        self.port = free_port()
        self.database = database
        self.log_path = Path(tmp_dir) / f"server-{self.port}.log"
        self.env = base_env(database.url, REDIS_URL=redis_url, **env)
        self.runserver = runserver
        self.process = None

    @property
    def origin(self):
        return f"http://127.0.0.1:{self.port}"

    def command(self):
        if self.runserver:
            return [
                PYTHON,
                "manage.py",
                "runserver",
                "--noreload",
                f"127.0.0.1:{self.port}",
            ]
        return [
            *(PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)),
            *("--websocket-max-message-size", "1048576"),
            "config.asgi:application",
        ]

    def start(self):
        self.process, self.output = start_process(
            self.command(), self.log_path, LISTENING, cwd=ROOT, env=self.env
        )
        return self

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stop with a signal and return the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self.output.close()

    def kill(self):
        self.process.kill()
        self.process.wait(10)
        self.output.close()

    def logs(self):
        return self.log_path.read_text(errors="replace")

    def ws_url(self, slug, query=""):
        return f"ws://127.0.0.1:{self.port}/ws/boards/{slug}/{query}"

    def open(self, slug, query="", origin=True, **kwargs):
        """A real WebSocket client, sending an Origin naming this server."""
        options = {"compression": None, "max_size": None, "ping_interval": None}
        return connect(
            self.ws_url(slug, query),
            origin=self.origin if origin is True else origin,
            open_timeout=10,
            **{**options, **kwargs},
        )


class LoginFailed(AssertionError):
    pass


def response_cookies(response):
    jar = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


def post_login(server, username, password):
    """Submit the login form as a browser does: (status, cookies, page text).

    GETs the login page (csrftoken cookie and form token), then POSTs the
    credentials with both and an Origin naming the server.
    """
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/accounts/login/")
        page = conn.getresponse()
        cookies = response_cookies(page)
        body = page.read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', body)[1]
        form = {"username": username, "password": password}
        conn.request(
            "POST",
            "/accounts/login/",
            body=urlencode({**form, "csrfmiddlewaretoken": token}),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={cookies['csrftoken']}",
                "Origin": server.origin,
            },
        )
        answer = conn.getresponse()
        cookies.update(response_cookies(answer))  # login rotates csrftoken too
        return answer.status, cookies, answer.read().decode()
    finally:
        conn.close()


def live_login(server, username, password):
    """Log in to a live server; return the browser's Cookie header afterwards.

    It goes into a WebSocket's `Cookie` header (or another HTTP request's).
    """
    status, cookies, _ = post_login(server, username, password)
    if status != 302 or "sessionid" not in cookies:
        raise LoginFailed(f"login as {username!r} answered {status}")
    return f"csrftoken={cookies['csrftoken']}; sessionid={cookies['sessionid']}"


class RedisServer:
    """A throwaway redis-server; `stop`, `start` and `restart` keep its port,
    so the servers using it find it again where they left it (with no data:
    a restart forgets every group membership, as a real one does)."""

    def __init__(self, tmp_dir):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is required: apt-get install redis-server")
        self.tmp_dir = Path(tmp_dir)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    def start(self):
        self.process, self.output = start_process(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.tmp_dir)],
            self.tmp_dir / "redis.log",
            b"Ready to accept connections",
        )
        return self

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        self.process.wait(10)
        self.output.close()

    def restart(self):
        self.stop()
        return self.start()


def pg_bin_dir():
    """The newest installed PostgreSQL's programs (Debian's layout)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: (
            int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0
        ),
    )
    if not found:
        raise RuntimeError("PostgreSQL is required: apt-get install postgresql")
    return found[-1].parent


class PostgresServer:
    """A throwaway PostgreSQL cluster on a free loopback port, as
    scripts/with-services.sh makes one: initdb (as the postgres user when we
    are root: PostgreSQL refuses to run as root), trust auth, fsync off.
    `restart` is `pg_ctl restart -m fast`: every open connection is ended."""

    def __init__(self):
        self.bin = pg_bin_dir()
        # Not under pytest's tmp_path: its directories are private to root,
        # and the postgres user must reach its data directory.
        self.work = Path(tempfile.mkdtemp(prefix="whiteboard-pg-"))
        self.work.chmod(0o755)
        self.data = self.work / "data"
        self.log_path = self.work / "log"
        self.as_pg = []
        if os.geteuid() == 0:
            shutil.chown(self.work, "postgres")
            self.as_pg = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.url = f"postgres://whiteboard@127.0.0.1:{self.port}/postgres"
        self.pg(
            "initdb", "-D", self.data, "-U", "whiteboard", "-A", "trust", "-E", "UTF8"
        )
        self.start()

    def pg(self, program, *args):
        command = [*self.as_pg, str(self.bin / program), *map(str, args)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed:\n{result.stdout}{result.stderr}")
        return result

    def options(self):
        return (
            f"-p {self.port} -k {self.work} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=100"
        )

    def start(self):
        self.pg(
            *("pg_ctl", "-D", self.data, "-l", self.log_path, "-w"),
            *("-o", self.options(), "start"),
        )
        return self

    def restart(self):
        self.pg(
            *("pg_ctl", "-D", self.data, "-l", self.log_path, "-w", "-m", "fast"),
            *("-o", self.options(), "restart"),
        )

    def halt(self):
        """Stop the server (fast: open connections are ended); `start` again."""
        self.pg("pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop")

    def stop(self):
        with contextlib.suppress(RuntimeError):
            self.pg("pg_ctl", "-D", self.data, "-m", "immediate", "stop")
        shutil.rmtree(self.work, ignore_errors=True)

    def logs(self):
        return self.log_path.read_text(errors="replace")


def rss_kib(pid):
    """A process's resident memory (VmRSS in /proc/<pid>/status), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


async def read_state(ws):
    """Read `welcome` and the state frames; return (welcome, frames)."""
    welcome = json.loads(await ws.recv())
    assert welcome["type"] == "welcome", welcome
    frames = []
    while True:
        frame = json.loads(await ws.recv())
        frames.append(frame)
        if frame["type"] == "ops" or not frame.get("more"):
            return welcome, frames


async def closed_with(ws, timeout=5):
    """(close code, last frame) once the server closes the socket."""
    import asyncio

    from websockets.exceptions import ConnectionClosed

    last = None
    async with asyncio.timeout(timeout):
        try:
            while True:
                last = json.loads(await ws.recv())
        except ConnectionClosed as closed:
            return (closed.rcvd.code if closed.rcvd else None), last


async def next_of(ws, kind, timeout=10):
    """The next frame of type `kind`, skipping presence and volatile frames."""
    import asyncio

    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame
            assert frame["type"] in {"joined", "left", "cursors", "draft"}, frame


def stroke(element_id, n=0):
    return {
        "id": element_id,
        "kind": "stroke",
        "x": n,
        "y": n,
        "points": [[0, 0], [10, 5], [20, 0]],
        "color": "#1e88e5",
        "width": 3,
    }


def add_frame(element_id, cid=None):
    return json.dumps(
        {
            "type": "add",
            "cid": cid or f"cid0000-{element_id}",
            "element": stroke(element_id),
        }
    )


# -- the browser -------------------------------------------------------------

# Debian's Chromium (apt-get install chromium), never a `playwright install` build.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
]
VIEWPORT = {"width": 1280, "height": 800}


def launch_chromium(playwright):
    """Debian's Chromium, headless, driven by a started Playwright."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# -- fixtures (registered by the root conftest.py) -----------------------------

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def live_db(tmp_path_factory):
    return Database(tmp_path_factory.mktemp("live-db"))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """The REDIS_URL under test, or a redis-server of our own when none is set."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server.url
    server.stop()


@pytest.fixture
def start_server(live_db, tmp_path):
    """Start real servers; every one still running is stopped after the test."""
    started = []

    def start(database=None, **kwargs):
        kwargs.setdefault("redis_url", os.environ.get("REDIS_URL"))
        server = Server(database or live_db, tmp_path, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.kill()
