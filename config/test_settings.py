"""Settings for the test suite: the normal settings with a test secret and fast hashing.

`DATABASE_URL` and `REDIS_URL` still come from the environment, so the same suite runs on
SQLite + in-memory layers and on PostgreSQL + Redis.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("DEBUG", "false")

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests expect edits to reach the hot path at once; production keeps a few seconds (the
# multi-process tests set AIFLOWY_TEST_CONFIG_CACHE_SECONDS to run their servers like it).
AIFLOWY_CONFIG_CACHE_SECONDS = float(os.environ.get("AIFLOWY_TEST_CONFIG_CACHE_SECONDS", "0"))

# Key ids restart with every test database: rate-limit counters must not outlive the run.
os.environ.setdefault("AIFLOWY_REDIS_PREFIX", f"aiflowy-test-{os.getpid()}")
AIFLOWY_REDIS_PREFIX = os.environ["AIFLOWY_REDIS_PREFIX"]

# One test database per test process, so parallel runs (and a developer's run beside CI's)
# never drop each other's database.
_suffix = os.getpid()
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file (the live test server is another process), outside the project tree.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": Path(tempfile.gettempdir()) / f"aiflowy-test-{_suffix}.sqlite3"
    }
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_aiflowy_{_suffix}"}  # noqa: F405
