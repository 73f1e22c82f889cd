"""Settings, all read from the environment.

A local run needs no configuration (SQLite, in-memory channel layer). `REDIS_URL`
and `DATABASE_URL` switch to the scale-out setup; without `DJANGO_DEBUG=1` the
server refuses to start unless `DJANGO_SECRET_KEY` is set.
"""

import json
import os
import sys
from ipaddress import ip_network
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from whiteboard.origin import parse_origins
from whiteboard.protocol import Limits
from whiteboard.ratelimit import parse_rate

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=None):
    return os.environ.get(name, default)


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name, default):
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_list(name, default):
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def env_rate(name, default):
    """A rate like "10/m" (whiteboard/ratelimit.py), checked at start."""
    value = env(name, default)
    try:
        parse_rate(value)
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from exc
    return value


DEBUG = env_bool("DJANGO_DEBUG")

SECRET_KEY = env("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Set DJANGO_SECRET_KEY (a long random string), or DJANGO_DEBUG=1 for a "
            "local development run."
        )
    SECRET_KEY = "django-insecure-local-development-only"

# The WebSocket Origin check (whiteboard/origin.py) uses this list too.
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    # daphne first: its runserver serves WebSockets as well as HTTP.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "whiteboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the board page's scripts and styles) straight from the
    # project, under daphne and runserver alike, DEBUG on or off.
    "whiteboard.static_serving.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "whiteboard.csp.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "whiteboard.context_processors.accounts",
            ],
        },
    },
]

# SQLite in WAL mode with a busy timeout lets readers run beside the one writer;
# IMMEDIATE transactions take the write lock up front instead of failing with
# "database is locked" when a read transaction later tries to write.
# synchronous=FULL syncs the WAL at every commit: an op a client has seen
# survives a power cut, not only a crash of the server (ops are committed in
# batches, so this is one sync per batch).
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=20000;"
    ),
}

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        **SQLITE_OPTIONS,
        **DATABASES["default"].get("OPTIONS", {}),
    }
    DATABASES["default"]["CONN_MAX_AGE"] = None

REDIS_URL = env("REDIS_URL")
# Which channels_redis layer carries board events between processes: "core"
# (RedisChannelLayer, lists polled with BZPOPMIN) or "pubsub"
# (RedisPubSubChannelLayer, Redis PUBLISH/SUBSCRIBE). docs/performance.md
# compares them. Either may drop an event when Redis hiccups; connections then
# fetch the missing ops from the database (realtime/outbox.py, SeqOrder).
REDIS_CHANNEL_LAYER = env("REDIS_CHANNEL_LAYER", "core")
if REDIS_CHANNEL_LAYER not in {"core", "pubsub"}:
    raise ImproperlyConfigured("REDIS_CHANNEL_LAYER must be core or pubsub")


def redis_host(url: str) -> dict:
    """One channel-layer host: its URL and the redis-py connection options.

    redis-py 8 times out socket reads after 5 s, exactly the time
    channels_redis blocks waiting for a message, which killed every consumer
    whose channel stayed quiet that long; a query string in REDIS_URL still
    overrides the 30 s here. After a Redis restart, the first command on each
    connection redis-py pooled before fails with "Connection closed by
    server" although Redis is back: a command that fails to reach Redis is
    sent again, on a new connection, up to twice (timeouts are not retried:
    a hung Redis is reported, not waited for three times over).
    """
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError

    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), 2, (RedisConnectionError,))
    return {"address": url, "socket_timeout": 30, "retry": retry}


if REDIS_URL and REDIS_CHANNEL_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [redis_host(REDIS_URL)],
                "prefix": env("REDIS_PREFIX", "whiteboard"),
            },
        }
    }
elif REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [redis_host(REDIS_URL)],
                "prefix": env("REDIS_PREFIX", "whiteboard"),
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 1000, "expiry": 30},
        }
    }

# Django's cache holds the abuse-limit counters (whiteboard/ratelimit.py): in
# Redis when there is one, so every process counts together, under its own key
# prefix beside the channel layer's; else in this process's memory.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{env('REDIS_PREFIX', 'whiteboard')}-cache",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "whiteboard",
        }
    }

# Accounts (/accounts/...): sign-up can be turned off; log in and out land on the
# home page.
WHITEBOARD_SIGNUP_OPEN = env_bool("WHITEBOARD_SIGNUP_OPEN", True)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "whiteboard:home"
LOGOUT_REDIRECT_URL = "whiteboard:home"

# Abuse limits, per IP and per user (login: per username tried), e.g. "10/m",
# "5/30s", "100/h" or "off". Checked here so that a typo stops the server.
WHITEBOARD_LOGIN_RATE = env_rate("WHITEBOARD_LOGIN_RATE", "10/m")
WHITEBOARD_BOARD_CREATE_RATE = env_rate("WHITEBOARD_BOARD_CREATE_RATE", "20/h")
WHITEBOARD_SIGNUP_RATE = env_rate("WHITEBOARD_SIGNUP_RATE", "10/h")
# Proxies (addresses or networks) whose X-Forwarded-For names the client; the
# limits count the direct peer (REMOTE_ADDR) otherwise. See docs/deploy.md.
WHITEBOARD_TRUSTED_PROXIES = env_list("WHITEBOARD_TRUSTED_PROXIES", "")
try:
    [ip_network(entry, strict=False) for entry in WHITEBOARD_TRUSTED_PROXIES]
except ValueError as exc:
    raise ImproperlyConfigured(f"WHITEBOARD_TRUSTED_PROXIES: {exc}") from exc

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# whitenoise serves static files from the finders (static/ and the apps), so no
# `collectstatic` is needed before `make run` or the tests; a `collectstatic`
# into STATIC_ROOT still works for a CDN or nginx. Files keep their names (no
# manifest), so browsers revalidate after WHITENOISE_MAX_AGE seconds.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
WHITENOISE_MAX_AGE = env_int("WHITENOISE_MAX_AGE", 0 if DEBUG else 300)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Uploaded images (whiteboard/assets.py) are kept in the default storage:
# files under MEDIA_ROOT, or the backend WHITEBOARD_ASSET_STORAGE names (a
# class path, e.g. storages.backends.s3.S3Storage once django-storages is
# installed) with the options of WHITEBOARD_ASSET_STORAGE_OPTIONS (a JSON
# object). The server always serves them itself, after the board's access
# check: MEDIA_ROOT (or the bucket) must never be published directly, and
# MEDIA_URL is not a route. docs/deploy.md, "Images and assets".
MEDIA_ROOT = Path(env("WHITEBOARD_MEDIA_ROOT", "") or BASE_DIR / "media")
MEDIA_URL = "media/"


def env_json_object(name):
    value = env(name, "")
    if not value.strip():
        return {}
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a JSON object: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object, got {value!r}")
    return parsed


STORAGES = {
    "default": {
        "BACKEND": env(
            "WHITEBOARD_ASSET_STORAGE", "django.core.files.storage.FileSystemStorage"
        ),
        "OPTIONS": env_json_object("WHITEBOARD_ASSET_STORAGE_OPTIONS"),
    },
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
    },
}

# --- Security: cookies, HTTPS behind a proxy, HSTS, headers, WebSocket Origin ---
# Production-safe without DEBUG: Secure cookies and HSTS unless
# DJANGO_SECURE_COOKIES=0 (a plain-http intranet); docs/deploy.md, "Security
# checklist", lists the environment that `check --deploy` passes with.
SECURE_COOKIES = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Behind nginx terminating TLS: believe its X-Forwarded-Proto (which it must
# overwrite). The HTTP pages and the WebSocket Origin check both read it.
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Redirecting to https is only safe once Django can tell https requests apart:
# without the proxy header it would redirect https requests forever.
SECURE_SSL_REDIRECT = env_bool(
    "DJANGO_SECURE_SSL_REDIRECT",
    SECURE_COOKIES and env_bool("DJANGO_SECURE_PROXY_SSL_HEADER"),
)
# /healthz, /readyz and /metrics are answered before Django (and never
# redirected): whiteboard/operations.py.
# Sent on https responses only.
SECURE_HSTS_SECONDS = env_int(
    "WHITEBOARD_HSTS_SECONDS", 31536000 if SECURE_COOKIES else 0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("WHITEBOARD_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env_bool("WHITEBOARD_HSTS_PRELOAD")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# More origins a board's WebSocket may be opened from, besides the server's own
# (a host of ALLOWED_HOSTS on the scheme and port the request came in on).
WHITEBOARD_ALLOWED_ORIGINS = env_list("WHITEBOARD_ALLOWED_ORIGINS", "")
try:
    parse_origins(WHITEBOARD_ALLOWED_ORIGINS)
except ValueError as exc:
    raise ImproperlyConfigured(f"WHITEBOARD_ALLOWED_ORIGINS: {exc}") from exc
# --- end of the security block ---

# The protocol's limits, sent to every client in `welcome`.
WHITEBOARD_LIMITS = {
    "max_frame_bytes": env_int("WHITEBOARD_MAX_FRAME_BYTES", 262144),
    "max_points": env_int("WHITEBOARD_MAX_POINTS", 5000),
    "max_elements": env_int("WHITEBOARD_MAX_ELEMENTS", 50000),
    "ops_per_second": env_int("WHITEBOARD_OPS_PER_SECOND", 50),
    "heartbeat_seconds": env_int("WHITEBOARD_HEARTBEAT_SECONDS", 20),
    # The storage quota of one board: bytes of live elements (50 MiB).
    "max_board_bytes": env_int("WHITEBOARD_MAX_BOARD_BYTES", 50 * 1024 * 1024),
    # Image uploads (whiteboard/assets.py): the largest file (10 MiB) and the
    # most pixels, an animation's frames counted together.
    "max_asset_bytes": env_int("WHITEBOARD_MAX_ASSET_BYTES", 10 * 1024 * 1024),
    "max_asset_pixels": env_int("WHITEBOARD_MAX_ASSET_PIXELS", 40_000_000),
}
try:
    Limits(**WHITEBOARD_LIMITS)
except ValueError as exc:
    raise ImproperlyConfigured(f"WHITEBOARD_* limits: {exc}") from exc

# The transport's hard ceiling (runserver reads it; pass the same value to the
# daphne command as --websocket-max-message-size). Messages above max_frame_bytes
# but below it are closed by the consumer with 1009 as the protocol says; above
# it daphne (autobahn) drops the TCP connection without reading further.
DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE = max(
    1024 * 1024, 4 * WHITEBOARD_LIMITS["max_frame_bytes"]
)
DAPHNE_WEBSOCKET_MAX_FRAME_SIZE = DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE
# Ops older than this many seqs are not replayed to a resuming client: it gets a
# snapshot instead, which is smaller than a long replay.
WHITEBOARD_MAX_REPLAY = env_int("WHITEBOARD_MAX_REPLAY", 2000)
# At most this many history entries are searched by one undo or redo (the
# board's write lock is held meanwhile); beyond it the answer is nothing_to_undo.
WHITEBOARD_UNDO_SCAN = env_int("WHITEBOARD_UNDO_SCAN", 2000)
# How long (ms) a thread may hold the GIL while another waits for it, in the
# server process (config/asgi.py); the default is Python's own. Commits run in
# a database thread beside the event loop and hand the GIL back and forth
# with it. 1 ms made sustained-pg's acks 1.4x slower and helped no scenario
# (docs/performance.md); it stays a setting for operators who measure.
WHITEBOARD_SWITCH_INTERVAL_MS = env_int("WHITEBOARD_SWITCH_INTERVAL_MS", 5)
if WHITEBOARD_SWITCH_INTERVAL_MS < 1:
    raise ImproperlyConfigured("WHITEBOARD_SWITCH_INTERVAL_MS must be at least 1")

# History (whiteboard/timeline.py): a checkpoint of each board's elements every
# this many seqs, so that its state at any seq costs at most that many ops to
# compute (0: none). Ops older than WHITEBOARD_HISTORY_DAYS days are dropped,
# with their checkpoints, every hour (empty or 0: kept for ever).
WHITEBOARD_CHECKPOINT_OPS = env_int("WHITEBOARD_CHECKPOINT_OPS", 1000)
# The largest board file POST /boards/import takes (bytes); larger ones get a
# message and change nothing.
WHITEBOARD_MAX_IMPORT_BYTES = env_int("WHITEBOARD_MAX_IMPORT_BYTES", 64 * 1024 * 1024)
WHITEBOARD_HISTORY_DAYS = env_int("WHITEBOARD_HISTORY_DAYS", 0)
if WHITEBOARD_CHECKPOINT_OPS < 0 or WHITEBOARD_HISTORY_DAYS < 0:
    raise ImproperlyConfigured(
        "WHITEBOARD_CHECKPOINT_OPS and WHITEBOARD_HISTORY_DAYS must be 0 or more"
    )

# Bounds of the realtime side (docs/deploy.md, "Bounds"). Each has a documented
# outcome when it is reached; none is a queue that can grow without limit.
# Bytes waiting for one socket (queued, or in daphne's buffer) before 4413.
WHITEBOARD_SEND_BUFFER_BYTES = env_int("WHITEBOARD_SEND_BUFFER_BYTES", 4 * 1024 * 1024)
# Seconds a socket may read nothing while bytes wait for it before 4413.
WHITEBOARD_SEND_STALL_SECONDS = env_int("WHITEBOARD_SEND_STALL_SECONDS", 10)
# Open sockets per browser session and per client address, per process: 4429.
# An address can be a whole school behind one NAT, hence the larger default.
WHITEBOARD_MAX_CONNECTIONS_PER_SESSION = env_int(
    "WHITEBOARD_MAX_CONNECTIONS_PER_SESSION", 50
)
WHITEBOARD_MAX_CONNECTIONS_PER_ADDRESS = env_int(
    "WHITEBOARD_MAX_CONNECTIONS_PER_ADDRESS", 500
)
# Ops of one connection waiting to be committed; more get `rate_limited`.
WHITEBOARD_MAX_PENDING_OPS = env_int("WHITEBOARD_MAX_PENDING_OPS", 100)
# Drafts one connection may send per second; the rest are dropped.
WHITEBOARD_DRAFTS_PER_SECOND = env_int("WHITEBOARD_DRAFTS_PER_SECOND", 30)
# How often each process renews its channel-layer group membership (a Redis
# restart forgets it) and compares its boards' seqs with the database's.
WHITEBOARD_GROUP_REFRESH_SECONDS = env_int("WHITEBOARD_GROUP_REFRESH_SECONDS", 3)
WHITEBOARD_SEQ_CHECK_SECONDS = env_int("WHITEBOARD_SEQ_CHECK_SECONDS", 2)
# How often each process renders, in a child process of its own, the
# thumbnails (whiteboard/thumbnails.py) of boards changed since their last one
# and left alone for a few seconds, at most 20 boards a run (0: never; then
# `manage.py thumbnails` from cron keeps them fresh).
WHITEBOARD_THUMBNAIL_SECONDS = env_int("WHITEBOARD_THUMBNAIL_SECONDS", 10)
if WHITEBOARD_THUMBNAIL_SECONDS < 0:
    raise ImproperlyConfigured("WHITEBOARD_THUMBNAIL_SECONDS must be 0 or more")
# Uploaded images are decoded and encoded again (whiteboard/assets.py) in child
# processes of each server process, this many of them, started at the first
# upload; at most WHITEBOARD_IMAGE_QUEUE uploads of a process wait for them,
# and the next one is answered 503 (`busy`).
WHITEBOARD_IMAGE_WORKERS = env_int("WHITEBOARD_IMAGE_WORKERS", 1)
WHITEBOARD_IMAGE_QUEUE = env_int("WHITEBOARD_IMAGE_QUEUE", 8)
if WHITEBOARD_IMAGE_WORKERS < 1 or WHITEBOARD_IMAGE_QUEUE < 1:
    raise ImproperlyConfigured("WHITEBOARD_IMAGE_WORKERS and _QUEUE must be 1 or more")

# --- Operations: metrics, health, logs (docs/operations.md) ---
# Several server processes on one host share this directory for their metrics
# (prometheus_client's multiprocess mode): /metrics of any of them answers for
# all. It must be set before prometheus_client is first imported, hence here.
# Empty it when the service starts (make run-multi and the systemd units do).
WHITEBOARD_METRICS_DIR = env("WHITEBOARD_METRICS_DIR") or env(
    "PROMETHEUS_MULTIPROC_DIR", ""
)
if WHITEBOARD_METRICS_DIR:
    if "prometheus_client.values" in sys.modules and not os.environ.get(
        "PROMETHEUS_MULTIPROC_DIR"
    ):
        raise ImproperlyConfigured(
            "prometheus_client was imported before the settings: set "
            "PROMETHEUS_MULTIPROC_DIR in the environment instead"
        )
    Path(WHITEBOARD_METRICS_DIR).mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = WHITEBOARD_METRICS_DIR
# Addresses (or networks) /metrics answers; everyone else gets 403. Behind a
# proxy, the client it names counts only if the proxy is trusted.
WHITEBOARD_METRICS_ALLOW = env_list("WHITEBOARD_METRICS_ALLOW", "127.0.0.1,::1")
try:
    [ip_network(entry, strict=False) for entry in WHITEBOARD_METRICS_ALLOW]
except ValueError as exc:
    raise ImproperlyConfigured(f"WHITEBOARD_METRICS_ALLOW: {exc}") from exc
# "json": one JSON object per log line (for a log collector); "plain" (the
# default): human-readable lines.
WHITEBOARD_LOG_FORMAT = env("WHITEBOARD_LOG_FORMAT", "plain").strip().lower()
if WHITEBOARD_LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured("WHITEBOARD_LOG_FORMAT must be plain or json")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.log_format.JsonFormatter"},
    },
    "filters": {"secrets": {"()": "config.log_redaction.RedactSecrets"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": WHITEBOARD_LOG_FORMAT,
            "filters": ["secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        # Replaces the handlers Django's default logging gives "django" (which
        # would print each line a second time, unfiltered, when DEBUG is on).
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": env("DAPHNE_LOG_LEVEL", "WARNING")},
    },
}
