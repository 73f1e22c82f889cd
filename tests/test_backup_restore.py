"""The backup and restore procedure of docs/deploy.md, section 7, on live servers.

Each step is the documented command with the test's own paths: a backup while
the server runs, more ops, the server stopped, the backup restored, `migrate`,
`newepoch --all`, the server started again, and new ops that take the restored
board past the seq an old client had. That client, resuming with its `since` and
epoch, must get a snapshot of the restored board, not a replay from its old seq.
"""

import asyncio
import shlex
import subprocess
from asyncio import to_thread
from pathlib import Path

import pytest

from tests.live import (
    ROOT,
    Database,
    PostgresServer,
    add_frame,
    base_env,
    manage,
    next_of,
    pg_bin_dir,
    read_state,
)

pytestmark = [pytest.mark.live, pytest.mark.standalone]

DOCS = (ROOT / "docs" / "deploy.md").read_text()

# The documented lines, as docs/deploy.md shows them.
SQLITE_BACKUP = (
    "sqlite3 /srv/whiteboard/db.sqlite3 "
    "\".backup '/var/backups/whiteboard/db-$(date +%F).sqlite3'\""
)
SQLITE_RESTORE = [
    "sudo -u whiteboard rm -f /srv/whiteboard/db.sqlite3-wal "
    "/srv/whiteboard/db.sqlite3-shm",
    "sudo -u whiteboard cp /var/backups/whiteboard/db-2026-12-01.sqlite3 "
    "/srv/whiteboard/db.sqlite3",
]
PG_BACKUP = (
    'pg_dump -Fc -f /var/backups/whiteboard/whiteboard-$(date +%F).dump "$DATABASE_URL"'
)
PG_RESTORE = (
    'pg_restore --clean --if-exists --no-owner -d "$DATABASE_URL" '
    "/var/backups/whiteboard/whiteboard-2026-12-01.dump"
)
AFTER_RESTORE = [
    "sudo -u whiteboard --preserve-env=DATABASE_URL .venv/bin/python manage.py "
    "migrate --noinput",
    "sudo -u whiteboard --preserve-env=DATABASE_URL .venv/bin/python manage.py "
    "newepoch --all",
]


def test_the_docs_show_the_commands_this_test_runs():
    for line in [SQLITE_BACKUP, *SQLITE_RESTORE, PG_BACKUP, PG_RESTORE, *AFTER_RESTORE]:
        assert line in DOCS, line


def run(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{shlex.join(command)}:\n{result.stderr}"


async def committed(ws, cids):
    waiting = set(cids)
    async with asyncio.timeout(10):
        while waiting:
            frame = await next_of(ws, "ops")
            waiting -= {op["cid"] for op in frame["ops"]}


async def draw(ws, *ids):
    cids = [f"cid-{element_id}-0000" for element_id in ids]
    for element_id, cid in zip(ids, cids, strict=True):
        await ws.send(add_frame(element_id, cid))
    await committed(ws, cids)


async def procedure(start_server, database, backup, restore):
    """The whole procedure on `database`; `backup()` and `restore()` run the
    database's own commands."""
    server = await to_thread(start_server, database=database, redis_url=None)
    slug = await to_thread(database.create_board)
    async with server.open(slug) as ws:
        welcome, _ = await read_state(ws)
        epoch = welcome["board"]["epoch"]
        await draw(ws, "a", "b")
        await to_thread(backup)
        await draw(ws, "c", "d")  # seqs 3 and 4: not in the backup
    assert await to_thread(server.stop) == 0

    await to_thread(restore)
    env = base_env(database.url)
    await to_thread(manage, env, "migrate", "--noinput")
    await to_thread(manage, env, "newepoch", "--all")

    server = await to_thread(start_server, database=database, redis_url=None)
    async with server.open(slug) as other:
        welcome, state = await read_state(other)
        assert welcome["seq"] == 2
        await draw(other, "e", "f", "g")  # seqs 3 to 5: past the old client's 4
    async with server.open(slug, f"?since=4&epoch={epoch}") as old:
        welcome, state = await read_state(old)
        assert welcome["board"]["epoch"] != epoch
        assert [f["type"] for f in state] == ["snapshot"]
        elements = [e["id"] for f in state for e in f["elements"]]
        assert elements == ["a", "b", "e", "f", "g"]
    # A client that kept the new epoch is replayed as usual.
    async with server.open(slug, f"?since=4&epoch={welcome['board']['epoch']}") as new:
        _, state = await read_state(new)
        assert [op["seq"] for f in state for op in f["ops"]] == [5]


async def test_sqlite_online_backup_and_restore(start_server, tmp_path):
    database = await to_thread(Database, tmp_path, "sqlite")
    live = Path(database.url.removeprefix("sqlite:///"))
    saved = tmp_path / "backup.sqlite3"

    def backup():
        run(["sqlite3", str(live), f".backup '{saved}'"])

    def restore():
        for suffix in ("-wal", "-shm"):
            Path(f"{live}{suffix}").unlink(missing_ok=True)
        run(["cp", str(saved), str(live)])

    await procedure(start_server, database, backup, restore)


async def test_postgres_dump_and_restore(start_server, tmp_path):
    pg = await to_thread(PostgresServer)
    try:
        database = await to_thread(Database, tmp_path, pg.url)
        dump = tmp_path / "whiteboard.dump"
        bin_dir = pg_bin_dir()

        def backup():
            run([str(bin_dir / "pg_dump"), "-Fc", "-f", str(dump), database.url])

        def restore():
            run(
                [str(bin_dir / "pg_restore"), "--clean", "--if-exists", "--no-owner"]
                + ["-d", database.url, str(dump)]
            )

        await procedure(start_server, database, backup, restore)
    finally:
        await to_thread(pg.stop)
