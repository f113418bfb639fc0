"""AIFlowy's wire shapes: externalChat (JSON and SSE), the chat WebSocket's frames, the
workflow endpoints' bodies, and the one AIFlowy error body they all share.

Chat: `created` in epoch milliseconds, camelCase usage, `choices` as one object, `status`
START / MIDDLE / END / ERROR. Errors: `{"errorCode": <HTTP status>, "message"}`, plus `param`
when a request field is at fault and `runId` / `nodeId` when a workflow run failed. The same
body is the payload of an ERROR frame (SSE event or WebSocket frame) with `status` and
`created` added, so a caller parses one error shape whatever the transport.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any, Literal, NotRequired, Protocol

from pydantic import ConfigDict
from typing_extensions import TypedDict

from aiflowy.errors import ApiError, RunFailed
from aiflowy.llm import Completion, StreamEnd, delta_text
from aiflowy.sse import sse_event


# --- the shapes (return types below; the OpenAPI schema is generated from them) ----------------
class AiflowyError(TypedDict):
    """AIFlowy's error: `errorCode` is the HTTP status; `param` names the field at fault;
    `runId` / `nodeId` when a workflow run failed."""

    errorCode: int
    message: str
    param: NotRequired[str]
    runId: NotRequired[str]
    nodeId: NotRequired[str | None]


class AiflowyErrorFrame(AiflowyError):
    """The final frame (SSE event or WebSocket frame) of an answer that failed."""

    status: Literal["ERROR"]
    created: int


class Usage(TypedDict):
    promptTokens: int
    completionTokens: int
    totalTokens: int


class AnswerMessage(TypedDict):
    role: Literal["assistant"]
    content: str


class AnswerChoice(TypedDict):
    index: int
    message: AnswerMessage


class AnswerBody(TypedDict):
    """externalChat's JSON answer."""

    status: Literal["END"]
    created: int
    usage: Usage
    choices: AnswerChoice


class DeltaChoice(TypedDict):
    index: int
    delta: AnswerMessage


class AnswerFrame(TypedDict):
    """One frame of a streamed answer: START (first token), MIDDLE, END (with usage)."""

    status: Literal["START", "MIDDLE", "END"]
    created: int
    choices: DeltaChoice
    usage: NotRequired[Usage]


class RunningParameter(TypedDict, total=False):
    id: str | None
    name: str
    dataType: str
    description: str
    refType: str
    required: bool


class RunningParamsBody(TypedDict):
    errorCode: Literal[0]
    title: str
    description: str
    parameters: list[RunningParameter]


class RunResultBody(TypedDict):
    # Closed, like RunSuspendedBody: the OpenAPI document tells the two apart.
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    errorCode: Literal[0]
    runId: str
    result: Any


class RunAcceptedBody(TypedDict):
    errorCode: Literal[0]
    runId: str
    status: str


class RunStepBody(TypedDict):
    nodeId: str
    nodeType: str
    title: str
    status: str
    error: str | None
    durationMs: int | None


class RunStatusBody(TypedDict):
    errorCode: Literal[0]
    runId: str
    workflowId: int | None
    status: str
    result: Any
    error: str | None
    failedNodeId: str | None
    createdAt: str | None
    startedAt: str | None
    finishedAt: str | None
    durationMs: int | None
    steps: list[RunStepBody]
    # A suspended run: what it waits for, and until when.
    waitingFor: NotRequired[list[Any]]
    expiresAt: NotRequired[str | None]


class RunSuspendedBody(TypedDict):
    """`run` / `resume` of a run that now waits for a person."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    errorCode: Literal[0]
    runId: str
    status: Literal["suspended"]
    result: None
    waitingFor: list[Any]
    expiresAt: str | None


def error_body(error: ApiError) -> AiflowyError:
    """AIFlowy's error shape; `errorCode` is the HTTP status (never 0, which means success)."""
    body: AiflowyError = {"errorCode": error.status, "message": error.message}
    if error.param:
        body["param"] = error.param
    if isinstance(error, RunFailed):
        body["runId"] = error.run_id
        body["nodeId"] = error.node_id
    return body


def _now_ms() -> int:
    return int(time.time() * 1000)


def error_frame(error: ApiError) -> AiflowyErrorFrame:
    """The final frame of a chat stream or socket answer that failed."""
    return {"status": "ERROR", "created": _now_ms(), **error_body(error)}


def sse_error(error: ApiError) -> bytes:
    return sse_event(error_frame(error))


# --- bot chat ---------------------------------------------------------------------------------
def _usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    return {
        "promptTokens": prompt_tokens,
        "completionTokens": completion_tokens,
        "totalTokens": prompt_tokens + completion_tokens,
    }


def answer_body(completion: Completion) -> AnswerBody:
    """The non-stream answer."""
    return {
        "status": "END",
        "created": _now_ms(),
        "usage": _usage(completion.prompt_tokens, completion.completion_tokens),
        "choices": {"index": 0, "message": {"role": "assistant", "content": completion.content}},
    }


def _delta_frame(status: str, content: str) -> AnswerFrame:
    return {
        "status": status,
        "created": _now_ms(),
        "choices": {"index": 0, "delta": {"role": "assistant", "content": content}},
    }


async def answer_frames(replies: AsyncIterator[str | StreamEnd]) -> AsyncIterator[AnswerFrame]:
    """START with the first token, MIDDLE per later token, END (with usage) when done; each
    produced as soon as its token exists (END comes on its own, with empty content). A failure
    propagates: the transport ends the stream with `error_frame`."""
    started = False
    async for item in replies:
        if isinstance(item, StreamEnd):
            if not started:
                yield _delta_frame("START", "")
            yield {
                **_delta_frame("END", ""),
                "usage": _usage(item.prompt_tokens, item.completion_tokens),
            }
        elif text := delta_text(item):  # tool calls and other pieces have no AIFlowy frame
            yield _delta_frame("MIDDLE" if started else "START", text)
            started = True


async def answer_events(replies: AsyncIterator[str | StreamEnd]) -> AsyncIterator[bytes]:
    """`answer_frames` as SSE events."""
    async for frame in answer_frames(replies):
        yield sse_event(frame)


# --- workflows --------------------------------------------------------------------------------
class RunInput(Protocol):
    """A start parameter as `getRunningParams` lists it (the engine's `StartParameter`)."""

    id: str | None
    name: str
    data_type: str
    description: str
    ref_type: str
    required: bool
    extra: Any


class StoredStep(Protocol):
    node_id: str
    node_type: str
    title: str
    status: str
    error: str
    duration_ms: int | None


class StoredRun(Protocol):
    run_id: Any
    workflow_id: int | None
    status: str
    result: Any
    error: str
    failed_node_id: str
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    waiting_for: Any
    expires_at: datetime | None


def running_params_body(
    *, title: str, description: str, parameters: Iterable[RunInput]
) -> RunningParamsBody:
    """`getRunningParams`: id, name, dataType, description, refType, required (+ form hints)."""
    return {
        "errorCode": 0,
        "title": title,
        "description": description,
        "parameters": [
            {
                "id": parameter.id,
                "name": parameter.name,
                "dataType": parameter.data_type,
                "description": parameter.description,
                "refType": parameter.ref_type,
                "required": parameter.required,
                **dict(parameter.extra),
            }
            for parameter in parameters
        ],
    }


def run_result_body(*, run_id: str, result: Any) -> RunResultBody:
    return {"errorCode": 0, "runId": run_id, "result": result}


def run_accepted_body(*, run_id: str, status: str) -> RunAcceptedBody:
    return {"errorCode": 0, "runId": run_id, "status": status}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _waiting(status: str, waiting_for: Any, expires_at: datetime | None) -> dict[str, Any]:
    """A suspended run says what it waits for: per node its ``message`` and the ``fields`` to
    fill (``name``, ``label``, ``dataType``, ``enums``…), and until when."""
    if status != "suspended":
        return {}
    return {"waitingFor": waiting_for or [], "expiresAt": _iso(expires_at)}


def run_suspended_body(
    *, run_id: str, waiting_for: Any, expires_at: datetime | None
) -> RunSuspendedBody:
    """`run`/`resume` of a run that now waits for a person; resume it with
    `external/resume` (`runId` + `values`)."""
    return {
        "errorCode": 0,
        "runId": run_id,
        "status": "suspended",
        "result": None,
        **_waiting("suspended", waiting_for, expires_at),
    }


def run_status_body(run: StoredRun, steps: Iterable[StoredStep]) -> RunStatusBody:
    """`runStatus`: a run's state, its result once finished, and what each node did."""
    return {
        "errorCode": 0,
        "runId": str(run.run_id),
        "workflowId": run.workflow_id,
        "status": run.status,
        "result": run.result,
        "error": run.error or None,
        "failedNodeId": run.failed_node_id or None,
        "createdAt": _iso(run.created_at),
        "startedAt": _iso(run.started_at),
        "finishedAt": _iso(run.finished_at),
        "durationMs": run.duration_ms,
        **_waiting(run.status, run.waiting_for, run.expires_at),
        "steps": [
            {
                "nodeId": step.node_id,
                "nodeType": step.node_type,
                "title": step.title,
                "status": step.status,
                "error": step.error or None,
                "durationMs": step.duration_ms,
            }
            for step in steps
        ],
    }
