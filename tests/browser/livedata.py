"""The live server's database, read and written from the test process.

The browser tests check what a user would see *and* what the server stored. The
test process reaches the live server's database (the SQLite file or the
PostgreSQL database of tests/live.py) through its own Django connection alias,
so boards are set up and rows counted with the real models, not with raw SQL.

Playwright's sync API keeps an asyncio loop running in the test's thread, where
Django refuses database calls, so every query runs in one worker thread.
"""

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import dj_database_url
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connections

from whiteboard.models import Board, Element, Op

ALIAS = "live"


def attach(url):
    """Add the connection alias `live` for the database at `url`."""
    config = dj_database_url.parse(url, conn_max_age=0)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = dict(settings.SQLITE_OPTIONS)
    default = settings.DATABASES["default"]
    # configure_settings fills in every default key a connection needs.
    filled = connections.configure_settings({"default": default, ALIAS: config})
    connections.settings[ALIAS] = filled[ALIAS]


class LiveData:
    """Boards and their stored elements and ops in the live server's database."""

    def __init__(self, blocker):
        self.blocker = blocker
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="live-db")

    def run(self, function, *args):
        """`function(*args)` in the worker thread, with database access allowed."""
        return self.worker.submit(self._call, function, *args).result(timeout=60)

    def _call(self, function, *args):
        with self.blocker.unblock():
            try:
                return function(*args)
            finally:
                connections[ALIAS].close()

    def close(self):
        """Stop the worker and forget the alias (pytest-django never copies it)."""
        self.worker.shutdown()
        del connections.settings[ALIAS]

    def create_board(self, *, title="Browser test board", owner=None, **fields):
        """A new board (public, visitors edit, unless `fields` say otherwise);
        `owner` is a username."""
        slug = f"bt-{uuid.uuid4().hex[:12]}"
        self.run(_create_board, slug, title, owner, fields)
        return slug

    def create_user(self, password):
        """A new account; returns its username. The password is hashed with the
        server's default hasher (the test settings' MD5 one is not the server's)."""
        username = f"user-{uuid.uuid4().hex[:8]}"
        self.run(_create_user, username, password)
        return username

    def update_board(self, slug, **fields):
        """Change a board's columns (read by the server when a page connects)."""
        self.run(_update_board, slug, fields)

    def elements(self, slug, *, deleted=False):
        """The stored elements (or tombstones) of a board as dicts, bottom first."""
        return self.run(_elements, slug, deleted)

    def element_rows(self, slug):
        """How many element rows, live or tombstones, the board has."""
        return self.run(_element_rows, slug)

    def ops(self, slug):
        """(cid, kind) of every op stored for the board, in seq order."""
        return self.run(_ops, slug)


def _create_board(slug, title, owner, fields):
    if owner is not None:
        fields["owner"] = get_user_model().objects.using(ALIAS).get(username=owner)
    Board.objects.using(ALIAS).create(slug=slug, title=title, **fields)


def _create_user(username, password):
    hasher = PBKDF2PasswordHasher()
    user = get_user_model()(username=username)
    user.password = hasher.encode(password, hasher.salt())
    user.save(using=ALIAS)


def _elements(slug, deleted):
    rows = Element.objects.using(ALIAS).filter(board__slug=slug, deleted=deleted)
    return [
        {**json.loads(row.body), "v": row.v}
        for row in rows.order_by("z").only("body", "v")
    ]


def _element_rows(slug):
    return Element.objects.using(ALIAS).filter(board__slug=slug).count()


def _ops(slug):
    rows = Op.objects.using(ALIAS).filter(board__slug=slug).order_by("seq")
    return list(rows.values_list("cid", "kind"))


def _update_board(slug, fields):
    Board.objects.using(ALIAS).filter(slug=slug).update(**fields)
