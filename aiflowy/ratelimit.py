"""Per-key request limits (requests per minute, fixed one-minute windows).

With `REDIS_URL` the counters live in Redis, so every process shares them; without it they
live in this process (the embedded single-process default).
"""

from __future__ import annotations

import asyncio
import time
import weakref

from django.conf import settings

from aiflowy.errors import RateLimited

_local_counters: dict[tuple[int, int], int] = {}
_redis_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _redis():
    """One asyncio Redis client per event loop (its connections belong to that loop)."""
    loop = asyncio.get_running_loop()
    client = _redis_clients.get(loop)
    if client is None:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        _redis_clients[loop] = client
    return client


async def rate_limit_hit(key_id: int, limit_per_minute: int) -> None:
    """Count one request for the key; raise `RateLimited` (429 + Retry-After) over its limit."""
    if limit_per_minute <= 0:
        return
    now = time.time()
    window = int(now // 60)
    if settings.REDIS_URL:
        counter = f"{settings.AIFLOWY_REDIS_PREFIX}:rl:{key_id}:{window}"
        async with _redis().pipeline(transaction=True) as pipe:
            pipe.incr(counter)
            pipe.expire(counter, 120)
            count, _ = await pipe.execute()
    else:
        if len(_local_counters) > 10_000:
            for stale in [k for k in _local_counters if k[1] < window]:
                del _local_counters[stale]
        count = _local_counters.get((key_id, window), 0) + 1
        _local_counters[(key_id, window)] = count
    if count > limit_per_minute:
        retry_after = max(1, int((window + 1) * 60 - now + 0.999))
        raise RateLimited(
            f"Rate limit of {limit_per_minute} requests per minute exceeded for this API key; "
            f"retry in {retry_after} s.",
            retry_after=retry_after,
        )
