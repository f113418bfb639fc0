"""OpenAI's wire shapes for the chat completions and models endpoints.

The `openai` SDKs are the reference client: `created` in epoch seconds, `usage` in
snake_case, `model` the bot's name (what `GET /v1/models` lists), errors as
`{"error": {"message", "type", "param", "code"}}` with `type` derived from the status the way
OpenAI's own API does. A stream is `chat.completion.chunk` events (the role in the first
delta, `finish_reason` in the last, then the usage chunk if asked) and `[DONE]`; a failure
after the stream opened is one error event, then `[DONE]`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict

from aiflowy.errors import ApiError
from aiflowy.llm import Completion, StreamDelta, StreamEnd
from aiflowy.sse import sse_event


# --- the shapes (return types below; the OpenAPI schema is generated from them) ----------------
class OpenAIErrorDetail(TypedDict):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(TypedDict):
    """OpenAI's error, which the openai SDKs parse into their exception classes."""

    error: OpenAIErrorDetail


class UsageBody(TypedDict):
    """OpenAI's `usage`; the details are passed on when the provider sent them."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: NotRequired[dict[str, Any] | None]
    completion_tokens_details: NotRequired[dict[str, Any] | None]


class CompletionMessage(TypedDict):
    """The provider's message as sent: `content` is null beside `tool_calls`."""

    role: Literal["assistant"]
    content: str | None
    refusal: str | None
    tool_calls: NotRequired[list[dict[str, Any]]]
    # Further fields of the provider's message, as sent.
    annotations: NotRequired[list[dict[str, Any]]]
    audio: NotRequired[dict[str, Any] | None]
    function_call: NotRequired[dict[str, Any] | None]


class CompletionChoice(TypedDict):
    index: int
    message: CompletionMessage
    logprobs: dict[str, Any] | None
    finish_reason: str | None


class CompletionBody(TypedDict):
    """`chat.completion` (with FastGPT's `responseData` when `detail` is true)."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageBody
    system_fingerprint: NotRequired[str | None]
    responseData: NotRequired[list[dict[str, Any]]]


class ChunkDelta(TypedDict, total=False):
    role: Literal["assistant"]
    content: str | None
    refusal: str | None
    tool_calls: list[dict[str, Any]]
    function_call: dict[str, Any] | None


class ChunkChoice(TypedDict):
    index: int
    delta: ChunkDelta
    logprobs: dict[str, Any] | None
    finish_reason: str | None


class ChunkBody(TypedDict):
    """`chat.completion.chunk`; the stream ends with the data `[DONE]`."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: NotRequired[UsageBody | None]
    system_fingerprint: NotRequired[str | None]


class ModelBody(TypedDict):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelListBody(TypedDict):
    object: Literal["list"]
    data: list[ModelBody]


_ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


# Our codes under the names OpenAI clients know: a bot is what OpenAI calls a model.
_CODES = {"bot_not_found": "model_not_found"}


def error_type(status: int) -> str:
    """OpenAI's `error.type` for an HTTP status."""
    if status >= 500:
        return "api_error"
    return _ERROR_TYPES.get(status, "invalid_request_error")


def error_body(error: ApiError) -> OpenAIError:
    """OpenAI's error shape, which the openai SDKs parse into their exception classes."""
    return {
        "error": {
            "message": error.message,
            "type": error_type(error.status),
            "param": error.param,
            "code": _CODES.get(error.code, error.code),
        }
    }


def sse_error(error: ApiError) -> bytes:
    """What ends a stream that failed after it opened: the error, then `[DONE]`."""
    return sse_event(error_body(error)) + sse_event("[DONE]")


@dataclass(frozen=True, slots=True)
class CompletionHeader:
    """What every chunk of one answer repeats unchanged: id, creation second and model."""

    id: str
    created: int
    model: str

    @classmethod
    def new(cls, model: str) -> CompletionHeader:
        return cls(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=model)


def usage_body(
    prompt_tokens: int, completion_tokens: int, details: dict | None = None
) -> UsageBody:
    """OpenAI's `usage`; `details` are the provider's further fields (`prompt_tokens_details`,
    `completion_tokens_details`), passed on when it sent them."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if details:
        usage.update(details)
    return usage


def _choice_body(choice: dict) -> dict[str, Any]:
    """One of the provider's choices in OpenAI's shape: every field of its message
    (`tool_calls`, `refusal`, `annotations`, `audio`, ...) as sent, `content` null when it sent
    none (a tool call), and `refusal` and `logprobs` always present."""
    message = {
        "role": "assistant",
        "content": None,
        "refusal": None,
        **(choice.get("message") or {}),
    }
    message["role"] = "assistant"
    return {
        "index": choice.get("index") or 0,
        "message": message,
        "logprobs": choice.get("logprobs"),
        "finish_reason": choice.get("finish_reason") or "stop",
    }


def completion_body(header: CompletionHeader, completion: Completion) -> CompletionBody:
    """`chat.completion`: the whole answer, every choice the provider gave."""
    if completion.choices:
        choices = [_choice_body(choice) for choice in completion.choices]
    else:
        choices = [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.content, "refusal": None},
                "logprobs": None,
                "finish_reason": completion.finish_reason,
            }
        ]
    body: dict[str, Any] = {
        "id": header.id,
        "object": "chat.completion",
        "created": header.created,
        "model": header.model,
        "choices": choices,
        "usage": usage_body(
            completion.prompt_tokens, completion.completion_tokens, completion.usage_details
        ),
    }
    if completion.system_fingerprint is not None:
        body["system_fingerprint"] = completion.system_fingerprint
    return body


def chunk_body(
    header: CompletionHeader,
    delta: dict,
    *,
    finish_reason: str | None = None,
    include_usage: bool = False,
    index: int = 0,
    logprobs: dict | None = None,
    system_fingerprint: str | None = None,
) -> ChunkBody:
    """`chat.completion.chunk` with one choice. With `include_usage`, OpenAI sends
    `"usage": null` on every chunk but the final usage chunk; so do we."""
    body: ChunkBody = {
        "id": header.id,
        "object": "chat.completion.chunk",
        "created": header.created,
        "model": header.model,
        "choices": [
            {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        ],
    }
    if system_fingerprint is not None:
        body["system_fingerprint"] = system_fingerprint
    if include_usage:
        body["usage"] = None
    return body


def usage_chunk_body(header: CompletionHeader, end: StreamEnd) -> ChunkBody:
    """The chunk after the `finish_reason` chunk when `stream_options.include_usage` is set."""
    body: dict[str, Any] = {
        "id": header.id,
        "object": "chat.completion.chunk",
        "created": header.created,
        "model": header.model,
        "choices": [],
        "usage": usage_body(end.prompt_tokens, end.completion_tokens, end.usage_details),
    }
    if end.system_fingerprint is not None:
        body["system_fingerprint"] = end.system_fingerprint
    return body


def _text_chunk(header: CompletionHeader, text: str, *, first: bool, include_usage: bool) -> dict:
    delta = {"role": "assistant", "content": text} if first else {"content": text}
    return chunk_body(header, delta, include_usage=include_usage)


def _delta_chunk(
    header: CompletionHeader, item: StreamDelta, *, first: bool, include_usage: bool
) -> dict:
    """A tool call delta, refusal, logprobs or another choice's piece, as the provider sent
    it (tool calls keep their `index`, `id` and `function` pieces: OpenAI's indexed deltas)."""
    delta = {"role": "assistant", **item.delta} if first else item.delta
    return chunk_body(
        header,
        delta,
        finish_reason=item.finish_reason,
        include_usage=include_usage,
        index=item.index,
        logprobs=item.logprobs,
    )


async def completion_chunks(
    header: CompletionHeader,
    replies: AsyncIterator[str | StreamDelta | StreamEnd],
    *,
    include_usage: bool,
) -> AsyncIterator[dict | StreamEnd]:
    """The answer's chunks in order: text chunks (each choice's first with the role), then at
    the end the role (if nothing came at all), the `finish_reason` chunk and the usage chunk
    when asked; the `StreamEnd` itself is passed on last, for a caller that reports after
    it."""
    first = True
    # Choices other than 0 (`n` > 1) that have had their first chunk.
    other_started: set[int] = set()
    async for item in replies:
        if type(item) is str:
            yield _text_chunk(header, item, first=first, include_usage=include_usage)
            first = False
        elif isinstance(item, StreamDelta):
            if item.index == 0:
                yield _delta_chunk(header, item, first=first, include_usage=include_usage)
                first = False
            else:
                started = item.index in other_started
                other_started.add(item.index)
                yield _delta_chunk(header, item, first=not started, include_usage=include_usage)
        elif isinstance(item, StreamEnd):
            if first:
                yield _text_chunk(header, "", first=True, include_usage=include_usage)
            yield chunk_body(
                header,
                {},
                finish_reason=item.finish_reason,
                include_usage=include_usage,
                system_fingerprint=item.system_fingerprint,
            )
            if include_usage:
                yield usage_chunk_body(header, item)
            yield item


async def completion_events(
    header: CompletionHeader,
    replies: AsyncIterator[str | StreamDelta | StreamEnd],
    *,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """The whole SSE stream of a successful answer, ending with `[DONE]`."""
    async for chunk in completion_chunks(header, replies, include_usage=include_usage):
        if not isinstance(chunk, StreamEnd):
            yield sse_event(chunk)
    yield sse_event("[DONE]")


# --- models -----------------------------------------------------------------------------------
def model_body(*, name: str, created_at: datetime | None) -> ModelBody:
    """One bot as an OpenAI model: its `id` is the bot's name (its numeric id is accepted as
    `model` too)."""
    created = int(created_at.timestamp()) if created_at else 0
    return {"id": name, "object": "model", "created": created, "owned_by": "aiflowy"}


def model_list_body(models: Iterable[ModelBody]) -> ModelListBody:
    return {"object": "list", "data": list(models)}
