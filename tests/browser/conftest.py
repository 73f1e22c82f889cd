"""Fixtures of the browser tests: a live daphne, Debian's Chromium, board pages.

The browser is Playwright's sync API (the tests are plain sync functions, so no
asyncio loop is running in their thread) driving /usr/bin/chromium. Screenshots
of failing tests, the pages' console output and the server logs are kept under
artifacts/browser/ (git-ignored) for CI to keep.
"""

import os
import re
import time

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.live import ROOT, VIEWPORT, Server, launch_chromium

from . import livedata
from .boardpage import BoardPage

# expect() waits up to 5 s by default: too short on a busy 2-core machine, where
# a page load alone can take seconds. Waits still end as soon as the condition holds.
expect.set_options(timeout=15_000)


def run_name():
    url = os.environ.get("DATABASE_URL", "")
    return "postgres" if url.startswith(("postgres://", "postgresql://")) else "sqlite"


@pytest.fixture(scope="package")
def artifacts():
    """artifacts/browser/<time>-<sqlite|postgres>-<pid>/: one new folder per run.

    Never emptied by a run, so two runs at once (or the two passes of `make
    test`) keep each other's files; `make clean` removes them.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = ROOT / "artifacts" / "browser" / f"{stamp}-{run_name()}-{os.getpid()}"
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="package")
def live_data(live_db, django_db_blocker):
    livedata.attach(live_db.url)
    data = livedata.LiveData(django_db_blocker)
    yield data
    data.close()


def server_in(live_db, artifacts, **env):
    """A daphne on a free loopback port whose log goes to the artifacts.

    PYTHONFAULTHANDLER: a crash of the server leaves its Python stack in the log.
    """
    redis_url = os.environ.get("REDIS_URL")
    env.setdefault("PYTHONFAULTHANDLER", "1")
    return Server(live_db, artifacts, redis_url=redis_url, **env).start()


@pytest.fixture(scope="package")
def daphne(live_db, artifacts):
    """The daphne most tests share; it stays up for the whole package."""
    server = server_in(live_db, artifacts)
    yield server
    server.stop()


@pytest.fixture
def own_server(live_db, artifacts):
    """A daphne for one test only (one that stops and restarts it)."""
    server = server_in(live_db, artifacts)
    yield server
    if server.process.poll() is None:
        server.kill()


@pytest.fixture(scope="package")
def browser():
    playwright = sync_playwright().start()
    chromium = launch_chromium(playwright)
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture
def board(live_data):
    """A new public board everyone may draw on."""
    return live_data.create_board()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def open_board(request, browser, daphne, artifacts):
    """Open a board page as a new user: a fresh browser context each time.

    `open_board(slug)` waits until the page is online; `server=` picks another
    server, `context=` reuses a user's context (their cookies and localStorage),
    `touch=True` gives a touch screen, `login=(username, password)` logs in
    through the site's login form first. A test marked `clean_console` fails
    if any page logged an error to its console (a refused request included).
    A failing test leaves a screenshot and the console output of every page in
    the artifacts.
    """
    opened = []

    def open_page(slug, server=None, context=None, touch=False, login=None):
        if context is None:
            context = browser.new_context(
                viewport=VIEWPORT,
                device_scale_factor=1,
                accept_downloads=True,
                has_touch=touch,
            )
        page = context.new_page()
        console = []
        page.on("console", lambda message: console.append(message))
        board_page = BoardPage(page, (server or daphne).origin, slug)
        opened.append((board_page, console))
        return board_page.log_in(*login) if login else board_page.open()

    yield open_page
    save_pages(request.node, opened, artifacts)
    errors = [error for board_page, _ in opened for error in board_page.errors]
    logged = [m.text for _, console in opened for m in console if m.type == "error"]
    for context in {board_page.page.context for board_page, _ in opened}:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"
    if request.node.get_closest_marker("clean_console"):
        assert not logged, f"errors in the pages' consoles: {logged}"


def safe_name(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


def save_pages(node, opened, artifacts):
    """A failing test's pages: a screenshot and the console output of each.

    A passing test keeps the console output of a page that logged an error.
    """
    failed = getattr(node, "report_call", None) is None or node.report_call.failed
    for n, (board_page, console) in enumerate(opened):
        stem = f"{safe_name(node.name)}-page{n}"
        if failed or any(m.type == "error" for m in console):
            lines = [f"{m.type}: {m.text}" for m in console]
            (artifacts / f"{stem}.console.txt").write_text("\n".join(lines) + "\n")
        if failed and not board_page.page.is_closed():
            board_page.page.screenshot(path=artifacts / f"{stem}.png", full_page=True)
