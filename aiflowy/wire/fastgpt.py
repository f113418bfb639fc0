"""FastGPT's `detail: true` additions on the OpenAI-compatible endpoint.

Non-stream: the OpenAI answer plus `responseData` (one record per executed module). Stream:
named SSE events, `flowNodeStatus` first, `answer` carrying the same chunks as OpenAI's stream
(and its `[DONE]`), then `flowResponses` with the records; a failure is an `error` event with
OpenAI's error body, which ends the stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from aiflowy.errors import ApiError
from aiflowy.events import ModuleRun
from aiflowy.llm import StreamEnd
from aiflowy.sse import sse_event
from aiflowy.wire import openai

_SPEAKERS = {"system": "System", "user": "Human", "assistant": "AI"}


def error_body(error: ApiError) -> dict[str, Any]:
    return openai.error_body(error)


def sse_error(error: ApiError) -> bytes:
    return sse_event(error_body(error), event="error")


def response_data(modules: Iterable[ModuleRun]) -> list[dict[str, Any]]:
    """FastGPT's `responseData`."""
    return [
        {
            "moduleName": module.name,
            "moduleType": module.kind,
            "model": module.model,
            "tokens": module.prompt_tokens + module.completion_tokens,
            "inputTokens": module.prompt_tokens,
            "outputTokens": module.completion_tokens,
            "runningTime": round(module.running_seconds, 3),
            "query": module.query,
            "historyPreview": [
                {"obj": _SPEAKERS.get(message["role"], "Human"), "value": message["content"]}
                for message in module.history
            ],
            "quoteList": list(module.quote_list),
        }
        for module in modules
    ]


async def detail_events(
    header: openai.CompletionHeader,
    replies: AsyncIterator[str | StreamEnd],
    *,
    module_name: str,
    include_usage: bool,
    modules: Callable[[StreamEnd], list[ModuleRun]],
) -> AsyncIterator[bytes]:
    """`flowNodeStatus`, the `answer` events, `[DONE]`, then `flowResponses`."""
    yield sse_event({"status": "running", "name": module_name}, event="flowNodeStatus")
    end: StreamEnd | None = None
    async for chunk in openai.completion_chunks(header, replies, include_usage=include_usage):
        if isinstance(chunk, StreamEnd):
            end = chunk
        else:
            yield sse_event(chunk, event="answer")
    yield sse_event("[DONE]", event="answer")
    if end is not None:
        yield sse_event(response_data(modules(end)), event="flowResponses")
