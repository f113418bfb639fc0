"""Per-key request limits: a token bucket per key that holds `limit` requests and refills at
`limit` per minute.

Why a bucket and not fixed one-minute windows: a fixed window let 2× the limit through across
a window boundary (the limit at 0:59, the limit again at 1:00). A bucket spent at 0:59 has
refilled by a sixtieth per second at 1:00; and the wait it announces (`Retry-After`, the time
until one token is back) is exact and at most 60 s.

With `REDIS_URL` the buckets live in Redis (one small Lua script, atomic, so every process
shares them exactly); without it they live in this process (the embedded single-process
default). When Redis cannot be reached the limit degrades to buckets in this process (each
process then allows the limit on its own) instead of failing the request: an outage of the
limiter's store must not become an outage of the API. Refused requests take no token.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref

import redis.exceptions
from django.conf import settings

from aiflowy.errors import RateLimited

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0
# How long a Redis command may take before the limiter counts in-process instead.
REDIS_TIMEOUT_SECONDS = 0.5
# After a Redis failure, how long to count in-process before trying Redis again (so an outage
# does not cost every request a connect attempt).
REDIS_RETRY_SECONDS = 2.0
_REDIS_FAILURES = (OSError, asyncio.TimeoutError, redis.exceptions.RedisError)

# One bucket: {t: tokens left, at: when last refilled}; returns {1 or 0, tokens left}.
_TAKE_TOKEN = """
local limit = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(state[1]) or limit
local at = tonumber(state[2]) or now
tokens = math.min(limit, tokens + math.max(0, now - at) * limit / tonumber(ARGV[3]))
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) * 2)
return {taken, tostring(tokens)}
"""

_local_buckets: dict[int, tuple[float, float]] = {}
_redis_scripts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_redis_down_until = 0.0


def _take_token_script():
    """The script bound to one asyncio Redis client per event loop (its connections belong to
    that loop), with short timeouts: a Redis that hangs must not hang the request."""
    loop = asyncio.get_running_loop()
    script = _redis_scripts.get(loop)
    if script is None:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )
        script = client.register_script(_TAKE_TOKEN)
        _redis_scripts[loop] = script
    return script


async def _redis_take(key_id: int, limit: int, now: float) -> tuple[bool, float]:
    key = f"{settings.AIFLOWY_REDIS_PREFIX}:rl:{key_id}"
    taken, tokens = await _take_token_script()(keys=[key], args=[limit, now, WINDOW_SECONDS])
    return bool(taken), float(tokens)


def _local_take(key_id: int, limit: int, now: float) -> tuple[bool, float]:
    if len(_local_buckets) > 10_000:  # forget buckets that have refilled anyway
        for stale in [k for k, (_, at) in _local_buckets.items() if now - at > WINDOW_SECONDS]:
            del _local_buckets[stale]
    tokens, at = _local_buckets.get(key_id, (float(limit), now))
    tokens = min(float(limit), tokens + max(0.0, now - at) * limit / WINDOW_SECONDS)
    taken = tokens >= 1
    if taken:
        tokens -= 1
    _local_buckets[key_id] = (tokens, now)
    return taken, tokens


def _redis_failed(exc: BaseException) -> None:
    global _redis_down_until
    if time.monotonic() >= _redis_down_until:
        logger.warning(
            "Rate limiter cannot reach Redis (%s); counting in this process for %.0f s.",
            type(exc).__name__,
            REDIS_RETRY_SECONDS,
        )
    _redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS


async def rate_limit_hit(key_id: int, limit_per_minute: int) -> None:
    """Take one request from the key's bucket; raise `RateLimited` (429 + Retry-After, the
    whole seconds until the next request fits) when it is empty."""
    if limit_per_minute <= 0:
        return
    now = time.time()
    outcome = None
    if settings.REDIS_URL and time.monotonic() >= _redis_down_until:
        try:
            outcome = await _redis_take(key_id, limit_per_minute, now)
        except _REDIS_FAILURES as exc:
            _redis_failed(exc)
    taken, tokens = outcome or _local_take(key_id, limit_per_minute, now)
    if taken:
        return
    retry_after = max(1, math.ceil((1 - tokens) * WINDOW_SECONDS / limit_per_minute))
    raise RateLimited(
        f"Rate limit of {limit_per_minute} requests per minute exceeded for this API key; "
        f"retry in {retry_after} s.",
        retry_after=retry_after,
    )
