"""What the code serving one request knows about it, without passing it down every call: its
request id (logs, the `X-Request-Id` header, the stored exchange) and the time it spent
waiting on the LLM upstream (to tell the latency aiflowy adds from the upstream's own).

Plain Python (no Django): the LLM client imports it. Context variables follow the request's
task and the generators it iterates, and do not leak into other requests.
"""

from __future__ import annotations

import os
import re
import threading
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(slots=True)
class RequestContext:
    request_id: str
    upstream_seconds: float = 0.0
    # Set when the server ended the request's stream for its shutdown (recorded as an error).
    ended_by_shutdown: bool = False


_current: ContextVar[RequestContext | None] = ContextVar("aiflowy_request", default=None)

# What an incoming `X-Request-Id` may be to be kept (a proxy's id); anything else is replaced.
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


# New ids are 32 random hex digits (as `uuid4().hex` was), cut from random bytes read 4 KiB
# at a time: one `os.urandom` system call per 256 requests instead of one (and a UUID object)
# per request. A forked child starts with a fresh pool, so no two processes share ids.
_ID_BYTES = 16
_POOL_BYTES = 4096
_pool = b""
_pool_at = _POOL_BYTES
# Event loops in other threads (tests, management commands) take ids too: never the same bytes.
_pool_lock = threading.Lock()


def _pool_reset() -> None:
    global _pool, _pool_at, _pool_lock
    _pool, _pool_at, _pool_lock = b"", _POOL_BYTES, threading.Lock()


os.register_at_fork(after_in_child=_pool_reset)


def new_request_id() -> str:
    """A new random request id: 32 lowercase hex digits."""
    global _pool, _pool_at
    with _pool_lock:
        if _pool_at >= _POOL_BYTES:
            _pool, _pool_at = os.urandom(_POOL_BYTES), 0
        start = _pool_at
        _pool_at = start + _ID_BYTES
        chunk = _pool[start : start + _ID_BYTES]
    return chunk.hex()


def request_started(incoming_id: str | None = None) -> RequestContext:
    """Start the context of a request (in its own task): the caller's id if sane, else new."""
    request_id = (
        incoming_id if incoming_id and _ACCEPTED_ID.fullmatch(incoming_id) else new_request_id()
    )
    context = RequestContext(request_id)
    _current.set(context)
    return context


def current_request() -> RequestContext | None:
    return _current.get()


def current_request_id() -> str:
    context = _current.get()
    return context.request_id if context is not None else ""


def upstream_waited(seconds: float) -> None:
    """Add time spent waiting on an LLM upstream to the current request."""
    context = _current.get()
    if context is not None:
        context.upstream_seconds += seconds


def ended_by_shutdown() -> bool:
    context = _current.get()
    return context is not None and context.ended_by_shutdown
