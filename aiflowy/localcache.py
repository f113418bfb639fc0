"""A small per-process cache with a time-to-live, for configuration read on every request.

API keys and bots are read on every external call. A database round trip (a thread hop plus a
query) per call would cost more than our latency budget, and a shared Redis cache would still
cost a round trip. Each process instead keeps what it read for a few seconds: an edit or a
revocation reaches every process within the TTL, and nothing here is needed by another
process (the database stays the source of truth).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """Maps keys to values for `ttl` seconds; concurrent misses for one key share one load."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._loading: dict[Hashable, asyncio.Future] = {}

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None and pending.get_loop() is asyncio.get_running_loop():
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        else:
            future.set_result(value)
            self.set(key, value)
            return value
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]

    def set(self, key: Hashable, value: V) -> None:
        self._entries[key] = (time.monotonic() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, key: Hashable | None = None) -> None:
        """Forget one key, or everything (tests, and admin edits in this process)."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)
