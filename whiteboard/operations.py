"""The operator's endpoints, answered in front of Django: /healthz, /readyz, /metrics.

They sit in the ASGI application ahead of Django (config/asgi.py) because a
probe must not depend on what it probes: Django's sync views share one thread
under ASGI, so a database that hangs would hang a liveness check made there
too; and a probe by address (`http://10.0.0.5:8001/readyz`) would fail
Django's ALLOWED_HOSTS check. None of them sends board data.

- `/healthz`: 200 `ok` while the process serves requests (liveness).
- `/readyz`: 200 when the database answers a query and the channel layer
  carries a message from a send to a receive, each within READY_TIMEOUT; 503
  with a JSON reason otherwise. One check runs at a time per process and its
  answer is reused for READY_CACHE seconds.
- `/metrics`: the Prometheus text format (whiteboard/metrics.py), only to
  addresses in WHITEBOARD_METRICS_ALLOW (403 to the others).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable
from ipaddress import ip_address, ip_network
from types import SimpleNamespace
from typing import Any

import orjson
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers
from django.conf import settings
from django.db import connection

from whiteboard import metrics, ratelimit

logger = logging.getLogger(__name__)

READY_TIMEOUT = 2.0
READY_CACHE = 1.0
# Refused scrapes are logged at most this often (seconds): a scraper that
# is not allowed would otherwise write a line every scrape interval.
REFUSAL_LOG_EVERY = 60.0
PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class OperationsEndpoints:
    """An ASGI wrapper answering the three paths; everything else goes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in PATHS:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await respond(send, scope, 405, b"Use GET.\n", allow=b"GET, HEAD")
            return
        if scope["path"] == "/healthz":
            await respond(send, scope, 200, b"ok\n")
        elif scope["path"] == "/readyz":
            status, body = await readiness().check()
            await respond(
                send, scope, status, orjson.dumps(body) + b"\n", json_body=True
            )
        else:
            await serve_metrics(scope, send)


async def respond(
    send: Send,
    scope: Scope,
    status: int,
    body: bytes,
    *,
    json_body: bool = False,
    content_type: str = "text/plain; charset=utf-8",
    allow: bytes | None = None,
) -> None:
    if json_body:
        content_type = "application/json"
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
    ]
    if allow is not None:
        headers.append((b"allow", allow))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if scope["method"] == "HEAD":
        body = b""
    await send({"type": "http.response.body", "body": body})


# -- /metrics --------------------------------------------------------------------


def metrics_allowed(scope: Scope) -> tuple[bool, str]:
    """Whether the scrape comes from an allowed address, and why not.

    The address is the direct peer, or, when that is a trusted proxy
    (WHITEBOARD_TRUSTED_PROXIES), the client the proxy names: the rule of the
    abuse limits (ratelimit.client_ip). A request forwarded by a proxy that is
    not trusted is refused whatever its peer: its real client is unknown.
    """
    headers = dict(scope.get("headers") or ())
    forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1")
    peer = (scope.get("client") or ("",))[0] or ""
    meta = {"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded}
    address = ratelimit.client_ip(SimpleNamespace(META=meta))
    if forwarded and address == peer:
        return False, "forwarded by a proxy that is not in WHITEBOARD_TRUSTED_PROXIES"
    try:
        parsed = ip_address(address)
    except ValueError:
        return False, "no client address"
    networks = [ip_network(n, strict=False) for n in settings.WHITEBOARD_METRICS_ALLOW]
    if any(parsed in network for network in networks):
        return True, ""
    return False, "not in WHITEBOARD_METRICS_ALLOW"


_refusal_logged_at = float("-inf")


async def serve_metrics(scope: Scope, send: Send) -> None:
    global _refusal_logged_at
    allowed, why = metrics_allowed(scope)
    if not allowed:
        now = time.monotonic()
        if now - _refusal_logged_at >= REFUSAL_LOG_EVERY:
            _refusal_logged_at = now
            peer = (scope.get("client") or ("?",))[0]
            logger.warning("Refused /metrics to %s: %s", peer, why)
        await respond(send, scope, 403, b"Forbidden: metrics are not served here.\n")
        return
    # Reading the metrics directory is file work: off the event loop.
    body, content_type = await asyncio.to_thread(metrics.exposition)
    await respond(send, scope, 200, body, content_type=content_type)


# -- /readyz -----------------------------------------------------------------------


def ping_database() -> None:
    """One query on a fresh connection, closed after: a stale pooled
    connection must not hide a database that is gone, or stand for one that
    came back."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()


class Readiness:
    """The readiness check of one event loop (one server process)."""

    def __init__(self) -> None:
        self.answer: tuple[int, dict[str, Any]] | None = None
        self.checked_at = float("-inf")
        self.running: asyncio.Task[tuple[int, dict[str, Any]]] | None = None
        # One thread: a database that hangs holds it, and no second one.
        self.database_thread = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="readyz"
        )
        self.database_busy: asyncio.Future[None] | None = None
        self.layer: Any = None
        self.channel: str | None = None

    async def check(self) -> tuple[int, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        if self.answer is not None and loop.time() - self.checked_at < READY_CACHE:
            return self.answer
        if self.running is None:
            self.running = loop.create_task(self.run())
        return await asyncio.shield(self.running)

    async def run(self) -> tuple[int, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        try:
            database, layer = await asyncio.gather(
                self.check_database(), self.check_layer()
            )
            failing = {
                name: reason
                for name, reason in (("database", database), ("channel_layer", layer))
                if reason
            }
            if failing:
                answer = (503, {"status": "unavailable", "failing": failing})
            else:
                answer = (200, {"status": "ready"})
            if answer[0] != (self.answer or (200,))[0]:
                log = logger.warning if failing else logger.info
                log("Readiness: %s", answer[1])
            self.answer, self.checked_at = answer, loop.time()
            return answer
        finally:
            self.running = None

    async def check_database(self) -> str:
        loop = asyncio.get_running_loop()
        if self.database_busy is not None and not self.database_busy.done():
            return "the previous check is still waiting for the database"
        self.database_busy = loop.run_in_executor(self.database_thread, ping_database)
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await asyncio.shield(self.database_busy)
        except TimeoutError:
            return f"no answer within {READY_TIMEOUT:g} s"
        except Exception as exc:
            metrics.database_error()
            return describe(exc)
        return ""

    async def check_layer(self) -> str:
        """Send a message to a channel of our own and receive it back.

        A channel layer instance of the check's own: a receive cancelled at
        the timeout then cannot take a message meant for the process's
        channel (channels_redis receives for every local channel at once).
        """
        nonce = secrets.token_hex(8)
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                if self.layer is None:
                    self.layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
                if self.channel is None:
                    self.channel = await self.layer.new_channel()
                await self.layer.send(
                    self.channel, {"type": "readiness.check", "nonce": nonce}
                )
                while True:  # a late answer of an earlier check is skipped
                    message = await self.layer.receive(self.channel)
                    if message.get("nonce") == nonce:
                        return ""
        except TimeoutError:
            problem = f"no round trip within {READY_TIMEOUT:g} s"
        except Exception as exc:
            problem = describe(exc)
        metrics.layer_error("check")
        # A fresh channel next time: the old one's receive state is unknown.
        self.channel = None
        return problem


def describe(exc: BaseException) -> str:
    """A failure as one short line, without connection details (passwords)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text[:200]
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


_readiness: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Readiness] = (
    weakref.WeakKeyDictionary()
)


def readiness() -> Readiness:
    loop = asyncio.get_running_loop()
    found = _readiness.get(loop)
    if found is None:
        found = _readiness[loop] = Readiness()
    return found
