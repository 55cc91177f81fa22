"""Stockwire settings: one module, read from the environment (12-factor).

With nothing set, the embedded default runs: SQLite next to this project, local-memory cache,
Celery tasks run eagerly in-process, e-mail written to files in var/mail/ and DEBUG on.
Production sets DEBUG=False and must then provide SECRET_KEY and PAYMENT_WEBHOOK_SECRET;
start-up stops with a message naming whichever is missing. The variable names are the ones in
README's configuration table, `.env.example`, CI and docker-compose.yml.
"""

import ipaddress
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=True)


def _required_in_production(name: str, development_default: str) -> str:
    """Return the variable, or the development default only while DEBUG is on."""
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return development_default
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off (see .env.example).")


SECRET_KEY = _required_in_production(
    "SECRET_KEY", "django-insecure-development-only-key-never-use-in-production"
)
PAYMENT_WEBHOOK_SECRET = _required_in_production("PAYMENT_WEBHOOK_SECRET", "whsec_development_only")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])


def _networks_checked(values: list[str], *, name: str = "TRUSTED_PROXY_NETWORKS") -> list[str]:
    """Return `values` once each is a network or an address; stop start-up at a typo."""
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError as error:
            raise ImproperlyConfigured(
                f"{name} holds {value!r}, which is neither a network nor an "
                "address; expected e.g. 10.0.0.0/8,192.0.2.7"
            ) from error
    return values


# The reverse proxies whose X-Forwarded-For is believed (core.client_address). Empty,
# the peer of every connection is the client itself.
TRUSTED_PROXY_NETWORKS = _networks_checked(env.list("TRUSTED_PROXY_NETWORKS", default=[]))

INSTALLED_APPS = [
    # First, so that `runserver` is Daphne's: HTTP and WebSocket from one process
    # (docs/live.md).
    "daphne",
    # Django's admin with the dashboard as its index (backoffice.admin_site).
    "backoffice.admin_apps.StockwireAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    # Only for its static files and templates: the API docs page serves Swagger UI from the
    # installed package rather than a CDN, so it works offline.
    "ninja",
    "config.apps.StockwireConfig",
    "outbox",
    "audit",
    "catalog",
    "inventory",
    "orders",
    "payments",
    "reviews",
    "webhooks",
    "storefront",
    "backoffice.apps.BackofficeConfig",
    "live",
]

MIDDLEWARE = [
    "config.logging.RequestIdMiddleware",
    # Unsafe requests, and the rest of a request once it wrote, read the primary (core.replicas).
    "core.replicas.ReplicaPinMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit.middleware.AuditActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
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
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
# Persistent connections with health checks rather than psycopg's pool: gunicorn's sync workers
# serve one request at a time per process, so a per-process pool can never hand out more than one
# connection and only adds a checkout per request (bench/README.md has the measurement).
try:
    DATABASES = {
        "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
    }
except Exception as error:  # environ raises several types for a malformed URL
    raise ImproperlyConfigured(
        f"DATABASE_URL is malformed ({error}); expected e.g. postgres://user:pass@host:5432/name"
    ) from error
if DATABASES["default"].get("ENGINE") not in {
    "django.db.backends.postgresql",
    "django.db.backends.sqlite3",
}:
    raise ImproperlyConfigured(
        "DATABASE_URL must be postgres://user:pass@host:5432/name or sqlite:///path, "
        f"not {env.str('DATABASE_URL').split(':', 1)[0]}://…"
    )
# Prepared statements (bench/README.md, "Figures behind the code"): psycopg binds parameters
# server-side and prepares a statement the 5th time a connection runs it, so PostgreSQL parses
# and plans the checkout's statements once per connection instead of once per order. Off
# (`DB_PREPARED_STATEMENTS=False`) behind a pooler in transaction mode that does not track
# prepared statements (PgBouncer before 1.21, or without `max_prepared_statements`).
DB_PREPARED_STATEMENTS = env.bool("DB_PREPARED_STATEMENTS", default=True)
PREPARED_STATEMENT_OPTIONS = {"server_side_binding": True, "prepare_threshold": 5}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DB_PREPARED_STATEMENTS:
        DATABASES["default"].setdefault("OPTIONS", {}).update(PREPARED_STATEMENT_OPTIONS)
else:
    # The checkout and the document numbers write with INSERT … RETURNING (SQLite 3.35+).
    if sqlite3.sqlite_version_info < (3, 35):
        raise ImproperlyConfigured(
            f"SQLite 3.35 or newer is needed (INSERT … RETURNING); this Python has "
            f"{sqlite3.sqlite_version}. Use a newer Python build or set DATABASE_URL to PostgreSQL."
        )
    # SQLite serialises writers; waiting a little beats "database is locked" in eager tasks.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Applied to every PostgreSQL connection by config.receivers: a stuck lock or a runaway query
# fails fast with an error instead of hanging a web or worker process.
DB_STATEMENT_TIMEOUT_MS = env.int("DB_STATEMENT_TIMEOUT_MS", default=15_000)
DB_LOCK_TIMEOUT_MS = env.int("DB_LOCK_TIMEOUT_MS", default=5_000)


def _replica_database(url: str) -> dict:
    """The settings of one streaming replica of DATABASE_URL, given by its URL.

    Its test database is the primary's (TEST MIRROR): replication copies it, and the test
    runner never tries to create one on a read-only server. A short connect timeout: a read
    sent to a replica that went away costs that long before it is read on the primary.
    """
    scheme = url.split(":", 1)[0]
    try:
        replica = env.db_url_config(url)
    except Exception as error:  # environ raises several types for a malformed URL
        raise ImproperlyConfigured(
            f"DATABASE_REPLICA_URLS holds a malformed {scheme}:// URL ({type(error).__name__}); "
            "expected e.g. postgres://user:pass@replica-host:5432/name"
        ) from error
    engines = {DATABASES["default"]["ENGINE"], replica.get("ENGINE")}
    if engines != {"django.db.backends.postgresql"}:
        raise ImproperlyConfigured(
            "DATABASE_REPLICA_URLS names PostgreSQL streaming replicas of a PostgreSQL "
            f"DATABASE_URL; got a {scheme}:// replica of a "
            f"{DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]} database"
        )
    replica["CONN_MAX_AGE"] = DATABASES["default"]["CONN_MAX_AGE"]
    replica["CONN_HEALTH_CHECKS"] = True
    replica.setdefault("OPTIONS", {}).setdefault("connect_timeout", 2)
    if DB_PREPARED_STATEMENTS:
        replica["OPTIONS"].update(PREPARED_STATEMENT_OPTIONS)
    replica["TEST"] = {"MIRROR": "default"}
    return replica


# Streaming replicas the storefront's catalog reads may use (docs/operations.md, "Read
# replicas"), as the aliases replica_1, replica_2, …; everything else reads and writes
# DATABASE_URL.
DATABASES.update(
    (f"replica_{number}", _replica_database(url))
    for number, url in enumerate(env.list("DATABASE_REPLICA_URLS", default=[]), start=1)
)
DATABASE_REPLICAS = [alias for alias in DATABASES if alias != "default"]
# A replica further behind the primary than this is skipped until it catches up.
DATABASE_REPLICA_MAX_LAG_SECONDS = env.float("DATABASE_REPLICA_MAX_LAG_SECONDS", default=5.0)
if DATABASE_REPLICAS:
    DATABASE_ROUTERS = ["core.replicas.ReplicaRouter"]

# --- Cache and broker ------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")


def _redis_database(url: str, number: int) -> str:
    """Return `url` pointed at Redis database `number` (whatever database it named before)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{number}"))


# The cache lives on its own Redis database number so flushing it never drops queued tasks.
REDIS_CACHE_DB = env.int("REDIS_CACHE_DB", default=1)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "core.cache.SharedClientRedisCache",
            "LOCATION": _redis_database(REDIS_URL, REDIS_CACHE_DB),
            "KEY_PREFIX": "stockwire",
            "OPTIONS": {
                # A hung Redis must cost a request at most this long, never hang it.
                "socket_connect_timeout": 0.5,
                "socket_timeout": 0.5,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Live updates (docs/live.md) --------------------------------------------------------------
# The channel layer carries pushes from the process that committed a change to the processes
# holding the sockets: Redis (its own database number) when REDIS_URL is set, else memory, which
# reaches only the sockets of the one process the embedded default runs.
REDIS_CHANNEL_LAYER_DB = env.int("REDIS_CHANNEL_LAYER_DB", default=3)
# How long a socket's process waits on Redis for the next message before asking again (a
# blocking BZPOPMIN); the connection's read timeout must be comfortably longer, or every idle
# wait ends in a TimeoutError that closes the socket (redis-py's default, 5 s, equals
# channels_redis's wait). Tests shorten the wait to hold a socket idle past it quickly.
LIVE_LAYER_WAIT_SECONDS = env.float("LIVE_LAYER_WAIT_SECONDS", default=5.0)
# Every key live keeps on the layer's Redis starts with this (groups, socket counts, stock
# windows): each test run sets its own (conftest.py), so runs sharing a Redis never mix.
LIVE_LAYER_PREFIX = env.str("LIVE_LAYER_PREFIX", default="stockwire:live")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "live.layer_redis.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": _redis_database(REDIS_URL, REDIS_CHANNEL_LAYER_DB),
                        "socket_timeout": 2 * LIVE_LAYER_WAIT_SECONDS + 5,
                        "socket_connect_timeout": 2,
                    }
                ],
                "wait_seconds": LIVE_LAYER_WAIT_SECONDS,
                "prefix": LIVE_LAYER_PREFIX,
                # A socket that stops reading loses its pushes past this many (best-effort:
                # the snapshot on reconnect is the truth); a message waits at most this long.
                "capacity": 200,
                "expiry": 30,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
# Limits of one socket and of one user (live.consumers and live.connections read them; tests
# shorten the times).
LIVE_MAX_CONNECTIONS_PER_USER = env.int("LIVE_MAX_CONNECTIONS_PER_USER", default=5)
LIVE_MAX_SUBSCRIPTIONS = env.int("LIVE_MAX_SUBSCRIPTIONS", default=50)
LIVE_MAX_MESSAGE_BYTES = 4096
# Messages a client may send: this many a second on average, in bursts of at most
# LIVE_MESSAGE_BURST (a token bucket per socket); past it each is refused (`rate_limited`), and
# a client that keeps sending through LIVE_MESSAGE_BURST refusals in a row is closed (4008).
LIVE_MESSAGES_PER_SECOND = 5.0
LIVE_MESSAGE_BURST = 20
LIVE_AUTH_TIMEOUT_SECONDS = 10.0
LIVE_PING_SECONDS = env.float("LIVE_PING_SECONDS", default=20.0)
LIVE_IDLE_TIMEOUT_SECONDS = env.float("LIVE_IDLE_TIMEOUT_SECONDS", default=60.0)
# At most one stock message per SKU per this long, on each socket and from each process.
LIVE_STOCK_COALESCE_SECONDS = 0.25
# A push waits at most this long for the channel layer, and never in the request's thread.
LIVE_PUBLISH_TIMEOUT_SECONDS = 0.5

# --- Celery ----------------------------------------------------------------------------------
_broker_configured = env.str("CELERY_BROKER_URL", default="") or (
    _redis_database(REDIS_URL, 0) if REDIS_URL else ""
)
CELERY_TASK_ALWAYS_EAGER = not _broker_configured
# Without a broker, Celery still builds (and never opens) a producer connection to serialise an
# eager task's arguments; kombu's in-memory transport stands in for Celery's default, RabbitMQ on
# localhost, which logs "No hostname was supplied" at the first order. A worker or beat refuses
# to start on it (config/celery.py).
CELERY_BROKER_URL = _broker_configured or "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = True
# Results are ignored unless a task asks (the diagnostic ping); they live on their own database.
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or (
    _redis_database(REDIS_URL, 2) if REDIS_URL else None
)
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="stockwire")
# A failed publish is left to the outbox relay; Celery's own publish retries would hold the
# request that committed the task for seconds while the broker is down.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The longest task (an invoice document) takes seconds; these bound a stuck one.
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A message a worker took but never acknowledged (acks_late: the worker died mid-task) goes back
# to the queue after this many seconds. Above the hard time limit plus the longest retry countdown
# (Celery caps backoff at 600 s; a worker holds a counted-down message unacked), so a task still
# running or waiting to retry is never handed to a second worker.
celery_visibility_timeout = env.int("CELERY_VISIBILITY_TIMEOUT", default=900)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": celery_visibility_timeout,
    # Workers look for such abandoned messages every few seconds (kombu's default sweep is every
    # 100 s), a tenth of the visibility timeout, so recovery takes about the timeout, not more.
    "unacked_restore_interval": max(1, min(10, celery_visibility_timeout // 10)),
    "unacked_restore_throttle": 1,
    # Without these kombu's Redis transport lets .delay() block a web request for minutes when
    # Redis accepts the connection but does not answer.
    "socket_timeout": 2,
    "socket_connect_timeout": 2,
    # A publish that fails is recorded in the outbox and re-sent by the relay; retrying here
    # would only hold the request.
    "max_retries": 0,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# An outbox request handed to the broker and neither done nor failed after this many seconds was
# lost (a Redis without persistence restarted, a worker died with its message): the relay
# publishes it again. Above the visibility timeout plus the hard time limit plus the longest
# retry wait (720 s), so a task still queued, running or waiting to retry is never re-sent;
# twice the visibility timeout keeps that true when the timeout is raised.
OUTBOX_REDELIVER_AFTER_SECONDS = env.int(
    "OUTBOX_REDELIVER_AFTER_SECONDS", default=2 * celery_visibility_timeout
)
# Who hands a committed outbox request to the broker (docs/architecture.md, "The outbox"):
# "commit", the process that committed it, right after the commit; or "relay", the listening
# relay process (`manage.py outbox_relay --loop`), woken by a NOTIFY that commits with the
# request, so no request waits on the broker. "relay" needs PostgreSQL and a broker. It takes
# the publish off the web tier but not off the machine: the relay spends on it what the web
# process saved, and more in all (bench/README.md, "The CPU case"), so "commit" stays the
# default.
_relay_possible = _broker_configured and (
    DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
)
OUTBOX_PUBLISH = env.str("OUTBOX_PUBLISH", default="commit")
if OUTBOX_PUBLISH not in {"relay", "commit"}:
    raise ImproperlyConfigured(f"OUTBOX_PUBLISH must be relay or commit, not {OUTBOX_PUBLISH!r}")
if OUTBOX_PUBLISH == "relay" and not _relay_possible:
    raise ImproperlyConfigured(
        "OUTBOX_PUBLISH=relay needs PostgreSQL (DATABASE_URL) and a broker (REDIS_URL or "
        "CELERY_BROKER_URL): the relay is woken by PostgreSQL's NOTIFY and publishes to the broker"
    )
CELERY_TIMEZONE = "UTC"
# A task cut off by a lost broker connection is redelivered anyway (acks_late), so the worker
# stops it instead of letting it finish twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Periodic work (docs/architecture.md, "Beat schedule", has the table). `expires` drops a run
# that waited in the queue past its next turn, so a stopped worker does not come back to a pile
# of stale runs.
CELERY_BEAT_SCHEDULE: dict = {
    "outbox-relay": {
        "task": "outbox.relay",
        "schedule": 5.0,
        "options": {"expires": 5},
    },
    "outbox-prune": {
        "task": "outbox.prune",
        "schedule": crontab(hour=3, minute=10),
        "options": {"expires": 3600},
    },
    "orders-expire-unpaid": {
        "task": "orders.expire_unpaid",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    "orders-backorders-sweep": {
        "task": "orders.backorders_sweep",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    "storefront-idempotency-keys-purge": {
        "task": "storefront.idempotency_keys_purge",
        "schedule": crontab(minute=25),
        "options": {"expires": 3600},
    },
    "orders-counters-reconcile": {
        "task": "orders.counters_reconcile",
        "schedule": crontab(hour=2, minute=40),
        "options": {"expires": 3600},
    },
    "inventory-low-stock-digest": {
        "task": "inventory.low_stock_digest",
        "schedule": crontab(hour=6, minute=0),
        "options": {"expires": 3600},
    },
    "webhooks-deliveries-dispatch": {
        "task": "webhooks.deliveries_dispatch",
        "schedule": 15.0,
        "options": {"expires": 15},
    },
    "webhooks-changes-emit": {
        "task": "webhooks.changes_emit",
        "schedule": 30.0,
        "options": {"expires": 30},
    },
    "webhooks-prune": {
        "task": "webhooks.prune",
        "schedule": crontab(hour=3, minute=40),
        "options": {"expires": 3600},
    },
    "reviews-ratings-reconcile": {
        "task": "reviews.ratings_reconcile",
        "schedule": crontab(hour=2, minute=50),
        "options": {"expires": 3600},
    },
    "reviews-pending-digest": {
        "task": "reviews.pending_digest",
        "schedule": crontab(hour=6, minute=5),
        "options": {"expires": 3600},
    },
}

# --- E-mail ----------------------------------------------------------------------------------
# In development the demo's e-mails are files in var/mail/ (one per message, readable apart from
# the request log); with DEBUG off they are printed to the console until EMAIL_URL names a server.
MAIL_DIR = BASE_DIR / "var" / "mail"
EMAIL_CONFIG = env.email_url(
    "EMAIL_URL", default=f"filemail:///{MAIL_DIR}" if DEBUG else "consolemail://"
)
vars().update(EMAIL_CONFIG)
# Seconds one SMTP step (connect, greeting, each command) may take: a hung mail server then
# fails the send with a timeout the e-mail tasks retry, instead of holding a worker until the
# task's time limit. Its own variable: django-environ's EMAIL_URL carries no timeout.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Stockwire <shop@stockwire.example>")
STAFF_ALERT_EMAILS = env.list("STAFF_ALERT_EMAILS", default=["staff@stockwire.example"])

# --- Shop rules ------------------------------------------------------------------------------
SHOP_CURRENCY = env.str("SHOP_CURRENCY", default="EUR")
RESERVATION_TTL_MINUTES = env.int("RESERVATION_TTL_MINUTES", default=30)
SHIPPING_FLAT_RATE = env.str("SHIPPING_FLAT_RATE", default="4.90")
SHIPPING_FREE_ABOVE = env.str("SHIPPING_FREE_ABOVE", default="50.00")
WEBHOOK_TOLERANCE_SECONDS = 300

# --- Outbound webhooks -----------------------------------------------------------------------
# Networks webhooks may reach although they are private, loopback or otherwise denied
# (docs/webhooks.md). Loopback only while DEBUG is on, for a receiver on the developer's
# machine; production reaches public addresses only unless this lists more.
WEBHOOK_ALLOWED_NETWORKS = _networks_checked(
    env.list("WEBHOOK_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"] if DEBUG else []),
    name="WEBHOOK_ALLOWED_NETWORKS",
)
WEBHOOK_CONNECT_TIMEOUT_SECONDS = env.float("WEBHOOK_CONNECT_TIMEOUT_SECONDS", default=3.0)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_SECRET_GRACE_HOURS = env.int("WEBHOOK_SECRET_GRACE_HOURS", default=24)
API_TOKEN_TTL_DAYS = env.int("API_TOKEN_TTL_DAYS", default=30)

# --- Static and media ------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")

# --- Internationalisation --------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Dates and times written with their time zone ("06 Dec 2026 14:03 UTC") wherever Django formats
# them: the admin's pages, lists and timelines.
FORMAT_MODULE_PATH = ["backoffice.formats"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    # The one above splits an e-mail at every punctuation mark, so it misses `quiet-otter-77`.
    {"NAME": "core.passwords.EmailLocalPartSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Security (production) -------------------------------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

# --- Logging ---------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "config.logging.RequestIdFilter"},
        "no_access_lines": {"()": "config.logging.DevServerAccessLinesDropped"},
    },
    "formatters": {
        "json": {"()": "config.logging.JsonFormatter"},
        "readable": {
            "format": "%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "readable" if DEBUG else "json",
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # One request is one line, the request-id middleware's access line. Django's own console
    # handler (a second, unformatted copy of its records) is dropped; django.request keeps only
    # errors, with their traceback (its 4xx warnings repeat the access line); runserver's access
    # lines are filtered out, its other lines (a request it refused itself) kept.
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.request": {"level": "ERROR"},
        "django.db.backends": {"level": "INFO"},
        "django.server": {
            "handlers": ["console"],
            "filters": ["no_access_lines"],
            "level": "INFO",
            "propagate": False,
        },
        # Daphne's runserver (`make run`): the same, its lines under their own name.
        "django.channels.server": {
            "handlers": ["console"],
            "filters": ["no_access_lines"],
            "level": "INFO",
            "propagate": False,
        },
    },
}
if CELERY_TASK_ALWAYS_EAGER:
    # Eager tasks run inside the request (or `run_periodic` pass) that asked for them: a line per
    # task that succeeded would bury the one line per request; failures are still logged.
    LOGGING["loggers"]["celery.app.trace"] = {"level": "WARNING"}
