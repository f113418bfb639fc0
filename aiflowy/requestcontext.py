"""What the code serving one request knows about it, without passing it down every call: its
request id (logs, the `X-Request-Id` header, the stored exchange) and the time it spent
waiting on the LLM upstream (to tell the latency aiflowy adds from the upstream's own).

Plain Python (no Django): the LLM client imports it. Context variables follow the request's
task and the generators it iterates, and do not leak into other requests.
"""

from __future__ import annotations

import re
import uuid
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


def request_started(incoming_id: str | None = None) -> RequestContext:
    """Start the context of a request (in its own task): the caller's id if sane, else new."""
    request_id = (
        incoming_id if incoming_id and _ACCEPTED_ID.fullmatch(incoming_id) else uuid.uuid4().hex
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
