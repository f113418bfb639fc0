"""Server-sent events framing (keep-alive pings are sent by `ApiConsumer.send_sse_stream`)."""

from __future__ import annotations

import json
from typing import Any

SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]

PING = b": ping\n\n"


def json_dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def sse_event(data: Any, *, event: str | None = None) -> bytes:
    """One SSE event. `data` is sent as is when it is a string, else as compact JSON."""
    text = data if isinstance(data, str) else json_dumps(data)
    lines = "".join(f"data: {line}\n" for line in text.split("\n"))
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}{lines}\n".encode()
