"""`make run-multi`: one daphne per core behind nginx, with Redis, on one host.

The real script (scripts/run-multi.py) with two workers on free loopback ports:
two clients through its nginx land on different daphnes, an op drawn by one
reaches the other, and SIGTERM stops every process it started, the daphnes
first (each client gets `bye` + 1012 through nginx). In the second pass of
`make test` DATABASE_URL and REDIS_URL are set, and the script must use them
instead of SQLite and a redis-server of its own. Also: the files in deploy/
are the ones docs/deploy.md shows, and nginx accepts them.
"""

import asyncio
import contextlib
import datetime
import http.client
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.live import (
    PYTHON,
    ROOT,
    Database,
    Output,
    add_frame,
    base_env,
    closed_with,
    free_port,
    manage,
    next_of,
    read_state,
)

pytestmark = pytest.mark.live

SCRIPT = ROOT / "scripts" / "run-multi.py"
UNIT = ROOT / "deploy" / "whiteboard@.service"
NGINX_SITE = ROOT / "deploy" / "nginx" / "whiteboard.conf"
READY = b"ready: open"
START_TIMEOUT = 120
NGINX = "/usr/sbin/nginx"


def distinct_ports(count):
    ports = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def established(ports):
    """Open TCP connections accepted on each of these loopback ports."""
    counts = dict.fromkeys(ports, 0)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == "01" and port in counts:
                counts[port] += 1
    return [counts[port] for port in ports]


def connections(ports, total):
    """Connections per port, once there are `total` of them in all."""
    counts = established(ports)
    return counts if sum(counts) == total else None


def stat_of(pid):
    """(parent pid, start time) of a live process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def exit_watches(tree):
    """{pid: pidfd} for the processes of `tree` still running: each pidfd
    becomes readable when its process ends (a reused pid is not watched)."""
    watches = {}
    for pid, (start, _argv) in tree.items():
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue  # already gone
        if (stat_of(pid) or (0, None))[1] == start:
            watches[pid] = fd
        else:
            os.close(fd)
    return watches


def wait_until_ended(watches, timeout):
    """Wait for every watched process to end; the pids still running, if any."""
    poller = select.poll()
    running = {fd: pid for pid, fd in watches.items()}
    for fd in running:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while running and (left := deadline - time.monotonic()) > 0:
        for fd, _event in poller.poll(left * 1000):
            poller.unregister(fd)
            del running[fd]
    for fd in watches.values():
        os.close(fd)
    return sorted(running.values())


def descendants(root):
    """{pid: (start time, argv)} of every live process below `root`."""
    parents = {}
    for entry in Path("/proc").glob("[0-9]*"):
        found = stat_of(entry.name)
        if found:
            parents[int(entry.name)] = found
    tree, todo = {}, [root]
    while todo:
        parent = todo.pop()
        for pid, (ppid, start) in parents.items():
            if ppid == parent and pid not in tree:
                with contextlib.suppress(OSError):
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    tree[pid] = (start, [a.decode() for a in argv if a])
                    todo.append(pid)
    return tree


def unit_daphne_args():
    """The daphne arguments of the systemd unit's ExecStart, %i unexpanded."""
    text = UNIT.read_text().replace("\\\n", " ")
    line = re.search(r"^ExecStart=(.*)$", text, re.M)[1]
    argv = shlex.split(line)
    return argv[argv.index(next(a for a in argv if a.endswith("/daphne"))) + 1 :]


class RunMulti:
    """scripts/run-multi.py as `make run-multi` starts it, on ports of the test."""

    def __init__(self, tmp_path, database):
        self.port, *self.daphne_ports, self.redis_port = distinct_ports(4)
        self.database = database
        self.log_path = tmp_path / "run-multi.log"
        self.env = base_env(
            database.url, REDIS_URL=os.environ.get("REDIS_URL"), WORKERS="2"
        )
        self.command = [
            *(PYTHON, str(SCRIPT), "--host", "127.0.0.1", "--port", str(self.port)),
            *("--daphne-ports", ",".join(map(str, self.daphne_ports))),
            *("--redis-port", str(self.redis_port)),
        ]
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.output = Output(self.process, self.log_path, READY)
        try:
            self.output.wait_ready(START_TIMEOUT)
        except RuntimeError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from exc
        return self

    def logs(self):
        return self.log_path.read_text(errors="replace")

    def open(self, slug):
        return connect(
            f"ws://127.0.0.1:{self.port}/ws/boards/{slug}/",
            origin=f"http://127.0.0.1:{self.port}",
            open_timeout=10,
            compression=None,
            ping_interval=None,
        )

    def kill(self):
        """Teardown after a failure: SIGKILL; the script's children follow it."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def run_multi(tmp_path):
    started = RunMulti(tmp_path, Database(tmp_path))
    yield started
    started.kill()


def children_by_kind(tree):
    kinds = {"daphne": [], "nginx": [], "redis": []}
    for pid, (_start, argv) in tree.items():
        command = " ".join(argv)
        if "-m daphne" in command:
            kinds["daphne"].append((pid, argv))
        elif command.startswith("nginx: master") and not forked_by_nginx(tree, pid):
            kinds["nginx"].append((pid, argv))
        elif "redis-server" in command:
            kinds["redis"].append((pid, argv))
    return kinds


def forked_by_nginx(tree, pid):
    """Whether `pid` is an nginx worker just forked by its master, which
    still shows the master's title until it sets its own."""
    parent = (stat_of(pid) or (None, None))[0]
    return parent in tree and " ".join(tree[parent][1]).startswith("nginx: master")


def check_children(run, kinds):
    """Two daphnes running the systemd unit's command, one nginx, and a
    redis-server only when REDIS_URL does not name one."""
    assert len(kinds["daphne"]) == 2, kinds
    for _pid, argv in kinds["daphne"]:
        args = argv[argv.index("daphne") + 1 :]
        port = args[args.index("-p") + 1]
        assert args == [a.replace("%i", port) for a in unit_daphne_args()]
    ports = sorted(int(argv[argv.index("-p") + 1]) for _pid, argv in kinds["daphne"])
    assert ports == run.daphne_ports
    assert len(kinds["nginx"]) == 1, kinds
    if os.environ.get("REDIS_URL"):
        assert kinds["redis"] == [], kinds
        assert "channel layer: Redis at REDIS_URL" in run.logs()
    else:
        assert len(kinds["redis"]) == 1, kinds
        assert f"Redis at redis://127.0.0.1:{run.redis_port}/0" in run.logs()


def http_get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, answer.read().decode()
    finally:
        conn.close()


async def draw_across_then_stop(run):
    """Alice and Bob on different daphnes; Alice's op reaches Bob; SIGTERM
    to the script then closes both with `bye` + 1012, through nginx."""
    async with run.open("demo") as alice:
        alice_welcome, _ = await read_state(alice)
        # The daphne that sent the welcome holds the connection accepted from nginx.
        first = connections(run.daphne_ports, 1)
        assert first is not None, established(run.daphne_ports)
        async with run.open("demo") as bob:
            bob_welcome, _ = await read_state(bob)
            # least_conn: bob's connection went to the other daphne.
            second = connections(run.daphne_ports, 2)
            assert second == [1, 1], (first, established(run.daphne_ports))
            # Either daphne's /metrics counts both (one metrics directory);
            # nginx does not serve it.
            status, body = http_get(run.daphne_ports[1], "/metrics")
            assert status == 200 and "\nwhiteboard_connections 2.0\n" in body
            assert http_get(run.port, "/metrics")[0] == 404
            # Presence spans the processes (through the database).
            assert alice_welcome["you"]["sid"] in [
                user["sid"] for user in bob_welcome["users"]
            ]
            await alice.send(add_frame("across-daphnes"))
            got = await next_of(bob, "ops")
            assert [op["element"]["id"] for op in got["ops"]] == ["across-daphnes"]
            assert got == await next_of(alice, "ops")

            run.process.send_signal(signal.SIGTERM)
            for ws in (alice, bob):
                code, last = await closed_with(ws, timeout=30)
                assert (code, last) == (1012, {"type": "bye", "reason": "restart"})


def test_two_clients_on_two_daphnes_draw_together_and_sigterm_stops_all(
    run_multi,
):
    run = run_multi.start()
    tree = descendants(run.process.pid)
    watches = exit_watches(tree)
    kinds = children_by_kind(tree)
    check_children(run, kinds)

    asyncio.run(draw_across_then_stop(run))

    assert run.process.wait(60) == 0, run.logs()
    run.output.close()
    # Every process it started is gone, and so is its temporary directory.
    running = wait_until_ended(watches, timeout=5)
    assert running == [], [tree[pid][1][:3] for pid in running]
    # nginx shows its command line as one string: "nginx: master process ...".
    run_dir = Path(re.search(r" -p (\S+)", " ".join(kinds["nginx"][0][1]))[1])
    assert not run_dir.exists(), run_dir
    # The op is in the database the script was given.
    count = manage(
        base_env(run.database.url),
        "shell",
        "-c",
        "from whiteboard.models import Op; "
        "print(Op.objects.filter(board__slug='demo').count())",
    )
    assert count.split()[-1] == "1", count


# -- the files in deploy/ ----------------------------------------------------------


def test_docs_show_the_deploy_files_verbatim():
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for path in (UNIT, NGINX_SITE):
        assert path.read_text() in docs, f"docs/deploy.md differs from {path}"


def proxy_directives(conf, location):
    """The directives of one `location` block, Host and comments left out."""
    block = re.search(rf"location {re.escape(location)} {{(.*?)}}", conf, re.S)[1]
    lines = (line.split("#", 1)[0].strip() for line in block.splitlines())
    return sorted(line for line in lines if line and "Host" not in line)


def test_run_multi_proxies_as_the_deploy_config_does():
    printed = subprocess.run(
        [PYTHON, str(SCRIPT), "--print-nginx-conf", "--workers", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    site = NGINX_SITE.read_text()
    for location in ("/ws/", "= /metrics", "/"):
        assert proxy_directives(printed, location) == proxy_directives(site, location)
    upstream = re.search(r"upstream whiteboard {(.*?)}", printed, re.S)[1]
    assert "least_conn;" in upstream and "zone whiteboard" in upstream
    assert re.findall(r"server (127\.0\.0\.1:\d+);", upstream) == [
        "127.0.0.1:8001",
        "127.0.0.1:8002",
        "127.0.0.1:8003",
    ]


def self_signed(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "board.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_nginx_accepts_the_deploy_config(tmp_path):
    """`nginx -t` on deploy/nginx/whiteboard.conf inside a minimal nginx.conf,
    with a throwaway certificate and log file instead of the real ones."""
    self_signed(tmp_path)
    site = NGINX_SITE.read_text()
    site = re.sub(r"ssl_certificate .*;", f"ssl_certificate {tmp_path}/cert.pem;", site)
    site = re.sub(
        r"ssl_certificate_key .*;", f"ssl_certificate_key {tmp_path}/key.pem;", site
    )
    site = site.replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "whiteboard.conf").write_text(site)
    temp_paths = "".join(
        f" {kind}_temp_path {tmp_path}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = str(tmp_path / "nginx.conf")
    Path(conf).write_text(
        f"pid {tmp_path}/nginx.pid; error_log stderr;\n"
        f"events {{}}\nhttp {{{temp_paths} include {tmp_path}/whiteboard.conf; }}\n"
    )
    binary = NGINX if Path(NGINX).exists() else "nginx"
    done = subprocess.run(
        [binary, "-t", "-e", "stderr", "-p", str(tmp_path), "-c", conf],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_make_run_multi_runs_the_script():
    """The Makefile target is a thin wrapper: the script, with HOST, PORT, WORKERS."""
    done = subprocess.run(
        ["make", "-n", "run-multi", "PORT=9100", "WORKERS=3", "HOST=127.0.0.1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert (
        "scripts/run-multi.py --host 127.0.0.1 --port 9100 --workers 3" in done.stdout
    )


def test_a_port_in_use_is_named_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (daphne_port,) = distinct_ports(1)
        done = subprocess.run(
            [
                PYTHON,
                str(SCRIPT),
                "--port",
                str(port),
                "--daphne-ports",
                str(daphne_port),
            ],
            cwd=ROOT,
            env=base_env(f"sqlite:///{tmp_path / 'unused.sqlite3'}"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stdout
    assert not (tmp_path / "unused.sqlite3").exists()
