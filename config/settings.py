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
STATIC_ROOT = BASE_DIR / "staticfiles"

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
# Where `"async": true` runs execute: "task" (an asyncio task in the web process that took the
# request) or "worker" (Channels worker processes, `manage.py runworkflowworker`, fed over the
# channel layer). Default: "worker" when REDIS_URL is set, else "task".
AIFLOWY_WORKFLOW_BACKGROUND = env.str(
    "AIFLOWY_WORKFLOW_BACKGROUND", default="worker" if REDIS_URL else "task"
)
# The channel-layer channel that workflow workers listen on.
AIFLOWY_WORKFLOW_WORKER_CHANNEL = env.str(
    "AIFLOWY_WORKFLOW_WORKER_CHANNEL", default="workflow-runs"
)
# A step's stored inputs/outputs/details above this many characters (as JSON) are truncated in
# run history; the caller still gets the full result.
AIFLOWY_WORKFLOW_STEP_MAX_CHARS = env.int("AIFLOWY_WORKFLOW_STEP_MAX_CHARS", default=65_536)

# --- Knowledge bases (knowledge/) ------------------------------------------------------------
# Where item vectors are searched: "auto" (pgvector when PostgreSQL had the `vector` extension
# at migrate time, else the embedded numpy matrix), "embedded" or "pgvector".
AIFLOWY_KNOWLEDGE_VECTOR_BACKEND = env.str("AIFLOWY_KNOWLEDGE_VECTOR_BACKEND", default="auto")
# pushData: at most this many items per call; an item's `q` + `a` at most this many tokens.
AIFLOWY_KNOWLEDGE_MAX_PUSH_ITEMS = env.int("AIFLOWY_KNOWLEDGE_MAX_PUSH_ITEMS", default=1000)
AIFLOWY_KNOWLEDGE_MAX_ITEM_TOKENS = env.int("AIFLOWY_KNOWLEDGE_MAX_ITEM_TOKENS", default=3000)
# QA mode: at most this many tokens per text sent to the LLM.
AIFLOWY_KNOWLEDGE_MAX_QA_TOKENS = env.int("AIFLOWY_KNOWLEDGE_MAX_QA_TOKENS", default=10000)
