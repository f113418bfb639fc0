"""Server-sent events framing and keep-alive."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]

PING = b": ping\n\n"

T = TypeVar("T")


def json_dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def sse_event(data: Any, *, event: str | None = None) -> bytes:
    """One SSE event. `data` is sent as is when it is a string, else as compact JSON."""
    text = data if isinstance(data, str) else json_dumps(data)
    lines = "".join(f"data: {line}\n" for line in text.split("\n"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}{lines}\n".encode()


class KeepAlive:
    """Marker yielded by `with_keepalive` when the source has been idle for the interval."""


KEEPALIVE = KeepAlive()


async def with_keepalive(source: AsyncIterator[T], interval: float) -> AsyncIterator[T | KeepAlive]:
    """Yield from `source`, and `KEEPALIVE` each time it stays silent for `interval` seconds.

    The pending `__anext__` is kept across timeouts (never cancelled), so no item is lost.
    """
    pending: asyncio.Task | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield KEEPALIVE
                continue
            task, pending = pending, None
            try:
                item = task.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
