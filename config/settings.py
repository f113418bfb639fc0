"""Settings for aiflowy, read from the environment (django-environ, optional `.env`). This is
the composition root (`config/`); `aiflowy/` is the shared library the apps import.

Defaults run the embedded set-up (SQLite, in-memory channel layer and cache) with no services.
Production sets `DATABASE_URL` (PostgreSQL) and `REDIS_URL` (channel layer, cache, rate limits).
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "channels",
    "aiflowy",
    "bots",
    "apikeys",
    "chat",
    "workflows",
    "demo",
    "shares",
    "knowledge",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's own psycopg 3 pool: connections are reused across the sync_to_async hops that the
    # async consumers make, instead of a connect per hop.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": 10}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the admin read while the history writer writes; a busy timeout instead of
    # "database is locked" under concurrent writes; IMMEDIATE transactions take the write lock
    # at BEGIN (and wait for it), because SQLite refuses, without waiting, to upgrade a
    # transaction that has read to a writer once another connection has committed.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Keep the connection: the history writer's thread would otherwise reconnect (and re-run
    # the PRAGMAs) for every batch.
    DATABASES["default"]["CONN_MAX_AGE"] = None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, cache, rate limits ------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 reads with a 5 s timeout by default, and channels-redis waits up to 5 s
            # per receive: an idle receiver (a worker, a quiet WebSocket) would crash.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
        }
    }
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="zh-hans")
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "aiflowy" / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apikeys.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "aiflowy.drf.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

# --- aiflowy --------------------------------------------------------------------------------
# Prefix of aiflowy's own Redis keys (rate-limit counters), for deployments sharing a Redis.
AIFLOWY_REDIS_PREFIX = env.str("AIFLOWY_REDIS_PREFIX", default="aiflowy")
# Largest request body accepted by the external endpoints.
AIFLOWY_MAX_BODY_BYTES = env.int("AIFLOWY_MAX_BODY_BYTES", default=1_000_000)
# How long a process trusts its in-memory copy of an API key or a bot. Revocation and edits
# reach every process within this many seconds.
AIFLOWY_CONFIG_CACHE_SECONDS = env.float("AIFLOWY_CONFIG_CACHE_SECONDS", default=4.0)
# SSE keep-alive comment interval while a stream is idle.
AIFLOWY_SSE_PING_SECONDS = env.float("AIFLOWY_SSE_PING_SECONDS", default=10.0)
# Workflow httpNode may call private/loopback addresses only when the operator allows it.
AIFLOWY_WORKFLOW_HTTP_ALLOW_PRIVATE = env.bool("AIFLOWY_WORKFLOW_HTTP_ALLOW_PRIVATE", default=False)
# Limits of one workflow run (whole run, each node attempt, sandboxed JavaScript, httpNode).
AIFLOWY_WORKFLOW_RUN_TIMEOUT_SECONDS = env.float(
    "AIFLOWY_WORKFLOW_RUN_TIMEOUT_SECONDS", default=300.0
)
AIFLOWY_WORKFLOW_NODE_TIMEOUT_SECONDS = env.float(
    "AIFLOWY_WORKFLOW_NODE_TIMEOUT_SECONDS", default=60.0
)
AIFLOWY_WORKFLOW_JS_TIMEOUT_MS = env.int("AIFLOWY_WORKFLOW_JS_TIMEOUT_MS", default=1000)
AIFLOWY_WORKFLOW_JS_MEMORY_MB = env.int("AIFLOWY_WORKFLOW_JS_MEMORY_MB", default=32)
AIFLOWY_WORKFLOW_HTTP_TIMEOUT_SECONDS = env.float(
    "AIFLOWY_WORKFLOW_HTTP_TIMEOUT_SECONDS", default=30.0
)
AIFLOWY_WORKFLOW_HTTP_MAX_RESPONSE_BYTES = env.int(
    "AIFLOWY_WORKFLOW_HTTP_MAX_RESPONSE_BYTES", default=5_000_000
)
AIFLOWY_WORKFLOW_MAX_PARALLEL_NODES = env.int("AIFLOWY_WORKFLOW_MAX_PARALLEL_NODES", default=8)
# A step's stored inputs/outputs/details above this many characters (as JSON) are truncated in
# run history; the caller still gets the full result.
AIFLOWY_WORKFLOW_STEP_MAX_CHARS = env.int("AIFLOWY_WORKFLOW_STEP_MAX_CHARS", default=65_536)

# --- Share links and the playground (shares/) ------------------------------------------------
# shareAuth init/start must answer within this many seconds, or the page/question is refused.
AIFLOWY_SHARE_AUTH_TIMEOUT_SECONDS = env.float("AIFLOWY_SHARE_AUTH_TIMEOUT_SECONDS", default=5.0)
# shareAuth/finish: per attempt, and how many attempts (with 1 s, 2 s, 4 s … between them).
AIFLOWY_SHARE_FINISH_TIMEOUT_SECONDS = env.float(
    "AIFLOWY_SHARE_FINISH_TIMEOUT_SECONDS", default=10.0
)
AIFLOWY_SHARE_FINISH_ATTEMPTS = env.int("AIFLOWY_SHARE_FINISH_ATTEMPTS", default=3)
AIFLOWY_SHARE_FINISH_RETRY_SECONDS = env.float("AIFLOWY_SHARE_FINISH_RETRY_SECONDS", default=1.0)
# The longest question the chat page accepts, in characters.
AIFLOWY_SHARE_MAX_QUESTION_CHARS = env.int("AIFLOWY_SHARE_MAX_QUESTION_CHARS", default=8000)
# --- Workflow loops and suspended runs (issue 13) ---------------------------------------------
# Node-loop re-runs plus loopNode iterations one run may make; past it the looping node fails.
AIFLOWY_WORKFLOW_MAX_LOOP_ITERATIONS = env.int(
    "AIFLOWY_WORKFLOW_MAX_LOOP_ITERATIONS", default=10_000
)
# How long a run suspended at a confirmNode (or waiting for inputs) can be resumed.
AIFLOWY_WORKFLOW_SUSPENDED_RUN_EXPIRY_SECONDS = env.int(
    "AIFLOWY_WORKFLOW_SUSPENDED_RUN_EXPIRY_SECONDS", default=7 * 24 * 3600
)

# --- Production at scale: durable jobs ------------------------------------------------------
# Who runs background work (workflow runs with `"async": true`, and other durable jobs):
# "procrastinate" (a job queue in PostgreSQL, run by `manage.py runjobs` workers; the default
# with PostgreSQL) or "inprocess" (an asyncio task of the process that queued it, not durable;
# the default with SQLite).
AIFLOWY_JOBS_BACKEND = env.str(
    "AIFLOWY_JOBS_BACKEND",
    default="procrastinate"
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    else "inprocess",
)
if AIFLOWY_JOBS_BACKEND == "procrastinate":
    # Its migrations are PostgreSQL SQL: installed only where they apply.
    INSTALLED_APPS.append("procrastinate.contrib.django")
# Queue name of aiflowy's jobs (workers take jobs of this queue only).
AIFLOWY_JOBS_QUEUE = env.str("AIFLOWY_JOBS_QUEUE", default="aiflowy")
# Jobs one worker process runs at once (they are async: mostly waiting on the LLM).
AIFLOWY_JOBS_CONCURRENCY = env.int("AIFLOWY_JOBS_CONCURRENCY", default=20)
# A worker silent this long (no heartbeat: killed, hung, cut off) has its jobs put back in
# the queue by the other workers; a run it had started is then marked failed.
AIFLOWY_JOBS_STALLED_SECONDS = env.float("AIFLOWY_JOBS_STALLED_SECONDS", default=20.0)

# --- Production at scale: observability -----------------------------------------------------
# Bearer token that GET /metrics requires; unset: /metrics does not exist (404).
AIFLOWY_METRICS_TOKEN = env.str("AIFLOWY_METRICS_TOKEN", default="")
# One JSON object per log line (with the request id), for log collectors; off: plain text.
AIFLOWY_LOG_JSON = env.bool("AIFLOWY_LOG_JSON", default=False)
LOGGING.setdefault("filters", {})["request_id"] = {"()": "aiflowy.logs.RequestIdFilter"}
LOGGING["handlers"]["console"].setdefault("filters", []).append("request_id")
if AIFLOWY_LOG_JSON:
    LOGGING.setdefault("formatters", {})["json"] = {"()": "aiflowy.logs.JsonFormatter"}
    LOGGING["handlers"]["console"]["formatter"] = "json"

# --- Production at scale: secrets at rest ---------------------------------------------------
# Fernet keys (comma-separated, the first encrypts) for provider API keys in the database;
# unset: one derived from SECRET_KEY (see docs/deploy.md, aiflowy/crypto.py).
AIFLOWY_ENCRYPTION_KEYS = env.list("AIFLOWY_ENCRYPTION_KEYS", default=[])

# --- Production at scale: graceful shutdown -------------------------------------------------
# On SIGTERM, open streams get this long to finish before they are ended with a final error
# event (run uvicorn with a longer --timeout-graceful-shutdown; docs/deploy.md).
AIFLOWY_SHUTDOWN_GRACE_SECONDS = env.float("AIFLOWY_SHUTDOWN_GRACE_SECONDS", default=20.0)

# --- Production at scale: deployment --------------------------------------------------------
# Static files served by the application itself (WhiteNoise), compressed, after
# `manage.py collectstatic` (the Dockerfile runs it).
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# HTTPS behind a proxy that terminates TLS (docs/deploy.md): all off by default so that a
# plain-HTTP set-up (the embedded one, the tests) works; production turns them on.
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)

# --- Failing fast when PostgreSQL is unreachable (issue 16) -----------------------------------
# A request that needs the database answers 503 (with Retry-After) within about this long when
# PostgreSQL is down, instead of stalling for the driver's and pool's 30 s defaults; the pool
# reconnects on its own once the database is back (no restart). A statement running longer
# than the statement timeout is cancelled by the server (also a 503).
AIFLOWY_DB_CONNECT_TIMEOUT_SECONDS = env.int("AIFLOWY_DB_CONNECT_TIMEOUT_SECONDS", default=2)
AIFLOWY_DB_STATEMENT_TIMEOUT_MS = env.int("AIFLOWY_DB_STATEMENT_TIMEOUT_MS", default=30_000)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _db_options = DATABASES["default"].setdefault("OPTIONS", {})
    _db_options.setdefault("connect_timeout", AIFLOWY_DB_CONNECT_TIMEOUT_SECONDS)
    _db_options.setdefault("options", f"-c statement_timeout={AIFLOWY_DB_STATEMENT_TIMEOUT_MS}")
    if isinstance(_db_options.get("pool"), dict):
        # How long a request waits for a pooled connection (psycopg_pool's default: 30 s).
        _db_options["pool"].setdefault("timeout", AIFLOWY_DB_CONNECT_TIMEOUT_SECONDS)
# --- Knowledge bases (knowledge/) ------------------------------------------------------------
# Where item vectors are searched: "auto" (pgvector when PostgreSQL had the `vector` extension
# at migrate time, else the embedded numpy matrix), "embedded" or "pgvector".
AIFLOWY_KNOWLEDGE_VECTOR_BACKEND = env.str("AIFLOWY_KNOWLEDGE_VECTOR_BACKEND", default="auto")
# pgvector backend: below this many vectors of a knowledge base pgvector scores them all;
# from there on only this many candidates picked by the process's binary codes
# (knowledge/vectors.py, docs/knowledge.md).
AIFLOWY_KNOWLEDGE_PG_EXACT_BELOW = env.int("AIFLOWY_KNOWLEDGE_PG_EXACT_BELOW", default=5000)
AIFLOWY_KNOWLEDGE_PG_CANDIDATES = env.int("AIFLOWY_KNOWLEDGE_PG_CANDIDATES", default=500)
# pushData: at most this many items per call; an item's `q` + `a` at most this many tokens.
AIFLOWY_KNOWLEDGE_MAX_PUSH_ITEMS = env.int("AIFLOWY_KNOWLEDGE_MAX_PUSH_ITEMS", default=1000)
AIFLOWY_KNOWLEDGE_MAX_ITEM_TOKENS = env.int("AIFLOWY_KNOWLEDGE_MAX_ITEM_TOKENS", default=3000)
# QA mode: at most this many tokens per text sent to the LLM.
AIFLOWY_KNOWLEDGE_MAX_QA_TOKENS = env.int("AIFLOWY_KNOWLEDGE_MAX_QA_TOKENS", default=10000)
