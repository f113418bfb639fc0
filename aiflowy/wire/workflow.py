"""The events of a streamed workflow run (`run` with `stream: true`), as named SSE events with
camelCase payloads: `runStarted`, `nodeStarted`, `llmToken`, `nodeFinished`, and always a last
`runFinished`. A run that fails outside the engine (a bug, a lost worker) still ends with
`runFinished`, status `failed`, and the error message a caller may see.

Errors answered before the stream opens are AIFlowy's (`aiflowy.wire.aiflowy.error_body`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict

from aiflowy.errors import ApiError
from aiflowy.events import LlmToken, NodeFinished, NodeStarted, RunEvent, RunFinished, RunStarted
from aiflowy.sse import sse_event
from aiflowy.wire.aiflowy import error_body

__all__ = ["error_body", "error_frame", "event_body", "events", "sse_error"]


# --- the shapes (return type below; the OpenAPI schema is generated from them) -----------------
class RunStartedEvent(TypedDict):
    event: Literal["runStarted"]
    runId: str
    workflowId: int


class NodeStartedEvent(TypedDict):
    event: Literal["nodeStarted"]
    nodeId: str
    nodeType: str
    title: str


class LlmTokenEvent(TypedDict):
    event: Literal["llmToken"]
    nodeId: str
    delta: str


class NodeFinishedEvent(TypedDict):
    event: Literal["nodeFinished"]
    nodeId: str
    nodeType: str
    title: str
    status: str
    outputs: Any
    error: str | None
    durationMs: int | None


class RunFinishedEvent(TypedDict):
    """Always the last event; `status` `failed` with `error` when the run failed."""

    event: Literal["runFinished"]
    runId: str
    status: str
    result: Any
    error: str | None
    # `status` `suspended`: what the run waits for (continue it with `external/resume`).
    waitingFor: NotRequired[list[Any]]


RunEventBody = (
    RunStartedEvent | NodeStartedEvent | LlmTokenEvent | NodeFinishedEvent | RunFinishedEvent
)


def event_body(event: RunEvent) -> RunEventBody:
    """One event's payload, with its name in `event` (also the SSE event name)."""
    if isinstance(event, LlmToken):
        return {"event": "llmToken", "nodeId": event.node_id, "delta": event.delta}
    if isinstance(event, NodeStarted):
        return {
            "event": "nodeStarted",
            "nodeId": event.node_id,
            "nodeType": event.node_type,
            "title": event.title,
        }
    if isinstance(event, NodeFinished):
        return {
            "event": "nodeFinished",
            "nodeId": event.node_id,
            "nodeType": event.node_type,
            "title": event.title,
            "status": event.status,
            "outputs": event.outputs,
            "error": event.error,
            "durationMs": event.duration_ms,
        }
    if isinstance(event, RunStarted):
        return {"event": "runStarted", "runId": event.run_id, "workflowId": event.workflow_id}
    if isinstance(event, RunFinished):
        body = {
            "event": "runFinished",
            "runId": event.run_id,
            "status": event.status,
            "result": event.result,
            "error": event.error,
        }
        if event.status == "suspended":
            body["waitingFor"] = event.waiting_for or []
        return body
    raise TypeError(f"not a workflow run event: {event!r}")


async def events(run_events: AsyncIterator[RunEvent]) -> AsyncIterator[bytes]:
    async for event in run_events:
        body = event_body(event)
        yield sse_event(body, event=body["event"])


def sse_error(error: ApiError, *, run_id: str = "") -> bytes:
    """The `runFinished` that ends a stream broken outside the engine."""
    body = event_body(RunFinished(status="failed", result=None, error=error.message, run_id=run_id))
    return sse_event(body, event="runFinished")


def error_frame(error: ApiError) -> dict[str, Any]:
    """A workflow WebSocket's answer to a request that failed (AIFlowy's error body)."""
    return {"event": "error", **error_body(error)}
