"""The per-key limit is a token bucket (no 2× burst across a minute boundary), and it keeps
working, counted in-process, while Redis is down."""

from __future__ import annotations

import socket

import pytest

from aiflowy import ratelimit
from aiflowy.errors import RateLimited

pytestmark = pytest.mark.asyncio


@pytest.fixture
def clock(monkeypatch):
    """The limiter's wall clock, set by the test."""
    now = {"t": 1_000_020.0}  # 0.0 s into a minute (1_000_020 = 16,667 × 60)
    monkeypatch.setattr(ratelimit.time, "time", lambda: now["t"])
    return now


@pytest.fixture
def local(settings):
    settings.REDIS_URL = ""
    ratelimit._local_buckets.clear()


async def allowed(key_id: int, limit: int, attempts: int) -> int:
    passed = 0
    for _ in range(attempts):
        try:
            await ratelimit.rate_limit_hit(key_id, limit)
            passed += 1
        except RateLimited:
            pass
    return passed


async def test_the_limit_holds_across_a_window_boundary(clock, local):
    clock["t"] += 59.0  # the last second of a minute
    assert await allowed(1, 10, 10) == 10
    clock["t"] += 1.5  # just after the minute's boundary: a quarter of a request refilled
    assert await allowed(1, 10, 10) == 0
    clock["t"] += 30.0  # half the bucket back
    assert await allowed(1, 10, 10) == 5
    clock["t"] += 120.0  # a quiet minute later: the full limit again, and no more
    assert await allowed(1, 10, 20) == 10


async def test_a_refused_request_says_when_to_retry_and_is_not_counted(clock, local):
    assert await allowed(2, 3, 3) == 3
    with pytest.raises(RateLimited) as refused:
        await ratelimit.rate_limit_hit(2, 3)
    assert 1 <= refused.value.retry_after <= 60
    assert refused.value.headers["Retry-After"] == str(refused.value.retry_after)
    clock["t"] += refused.value.retry_after
    await ratelimit.rate_limit_hit(2, 3)  # let in once the wait has passed


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_with_redis_down_the_limit_is_counted_in_process_instead_of_failing(
    clock, settings, caplog
):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    ratelimit._local_buckets.clear()
    ratelimit._redis_down_until = 0.0
    assert await allowed(3, 5, 8) == 5
    assert "cannot reach Redis" in caplog.text
    ratelimit._redis_down_until = 0.0
