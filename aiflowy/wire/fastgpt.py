"""FastGPT's `detail: true` additions on the OpenAI-compatible endpoint.

Non-stream: the OpenAI answer plus `responseData` (one record per executed module) and, when
the conversation has variables, `newVariables`. Stream: named SSE events, in this order
(README, "FastGPT's detail", has the same as a table):
- `flowNodeStatus` `{"status": "running", "name"}`: first, as the chat module starts;
- `updateVariables` (the variables): when the conversation has variables (sent, or stored for
  the `chatId`);
- `toolResponse` `{"tool": {id, toolName, toolAvatar, params, response}}`: once per tool
  result the caller sent after the last assistant message;
- `answer`: each OpenAI chunk (text, tool-call deltas, the finish chunk, usage), then `[DONE]`;
- `toolCall` `{"tool": {id, toolName, toolAvatar, functionName, params, response}}`: when a
  streamed tool call starts (its chunk carries the call's `id`), right after that chunk;
- `toolParams` `{"tool": {id, toolName, toolAvatar, params}}`: each later piece of its
  arguments;
- `flowResponses`: the `responseData` records, after `[DONE]`;
- `appStreamResponse`: the same records again, under the name older FastGPT clients read;
- `error` (OpenAI's error body): a failure, which ends the stream.

`fastAnswer` (FastGPT's fixed-reply text, from its "specified reply" node or a model that
cannot stream) has no counterpart in a bot's answer and is never sent. The shapes of the tool
events follow FastGPT's tool-call node; the bot's caller runs the tools, so `toolName` is the
function's name and `toolAvatar` is empty.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict

from aiflowy.errors import ApiError
from aiflowy.events import ModuleRun
from aiflowy.llm import StreamEnd
from aiflowy.sse import sse_event
from aiflowy.wire import openai

_SPEAKERS = {
    "system": "System",
    "developer": "System",
    "user": "Human",
    "assistant": "AI",
    "tool": "AI",
    "function": "AI",
}


# --- the stream's event data (the OpenAPI document is generated from these) --------------------
class FlowNodeStatusBody(TypedDict):
    """`flowNodeStatus`."""

    status: Literal["running"]
    name: str


class ToolInfo(TypedDict):
    id: str
    toolName: str
    toolAvatar: str
    params: str
    # `toolCall` has both, `toolResponse` `response`, `toolParams` neither.
    functionName: NotRequired[str]
    response: NotRequired[str]


class ToolEventBody(TypedDict):
    """`toolCall`, `toolParams`, `toolResponse`."""

    tool: ToolInfo


# `updateVariables`: the conversation's variables; `flowResponses` / `appStreamResponse`: the
# `responseData` records.
VariablesBody = dict[str, Any]
ResponseRecords = list[dict[str, Any]]


def flow_node_status_body(name: str) -> FlowNodeStatusBody:
    return {"status": "running", "name": name}


def error_body(error: ApiError) -> openai.OpenAIError:
    return openai.error_body(error)


def sse_error(error: ApiError) -> bytes:
    return sse_event(error_body(error), event="error")


def _text_of(content: Any) -> str:
    """A message's text as FastGPT's `value` holds it: text parts joined, other parts (images,
    audio, files) named by their type."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for part in content:
            if isinstance(part, dict):
                kind = part.get("type", "")
                pieces.append(part.get("text", "") if kind == "text" else f"[{kind}]")
        return "".join(pieces)
    return json.dumps(content, ensure_ascii=False)


def chat_items(messages: Iterable[dict]) -> list[dict[str, str]]:
    """OpenAI messages in FastGPT's `{"obj": "System"|"Human"|"AI", "value"}` form."""
    return [
        {
            "obj": _SPEAKERS.get(message.get("role", ""), "Human"),
            "value": _text_of(message.get("content")),
        }
        for message in messages
    ]


def response_data(modules: Iterable[ModuleRun]) -> list[dict[str, Any]]:
    """FastGPT's `responseData`: one record per executed module."""
    return [
        {
            "moduleName": module.name,
            "moduleType": module.kind,
            "runningTime": round(module.running_seconds, 3),
            "price": round(module.price, 6),
            "model": module.model,
            "tokens": module.prompt_tokens + module.completion_tokens,
            "inputTokens": module.prompt_tokens,
            "outputTokens": module.completion_tokens,
            "question": module.query,
            "query": module.query,
            "answer": module.answer,
            "maxToken": module.max_tokens,
            "temperature": module.temperature,
            "quoteList": list(module.quote_list),
            "historyPreview": chat_items(module.history),
            "completeMessages": chat_items(module.complete_messages),
        }
        for module in modules
    ]


def detail_fields(
    modules: Iterable[ModuleRun], *, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What `detail: true` adds to a JSON answer: `responseData`, and `newVariables` when the
    conversation has variables."""
    fields: dict[str, Any] = {"responseData": response_data(modules)}
    if variables:
        fields["newVariables"] = variables
    return fields


def _tool_event(event: str, tool: ToolInfo) -> bytes:
    body: ToolEventBody = {"tool": tool}
    return sse_event(body, event=event)


def tool_response_events(messages: Iterable[dict]) -> list[bytes]:
    """`toolResponse` for each tool result the caller sent after the last assistant message."""
    new_results: list[dict] = []
    for message in messages:
        if message.get("role") == "assistant":
            new_results = []
        elif message.get("role") in ("tool", "function"):
            new_results.append(message)
    return [
        _tool_event(
            "toolResponse",
            {
                "id": message.get("tool_call_id") or message.get("name") or "",
                "toolName": message.get("name") or "",
                "toolAvatar": "",
                "params": "",
                "response": _text_of(message.get("content")),
            },
        )
        for message in new_results
    ]


def tool_call_events(chunk: dict[str, Any], started: dict[int, str]) -> list[bytes]:
    """`toolCall` / `toolParams` for the tool-call deltas of one OpenAI chunk. `started` maps
    a call's index to its id, as the deltas after the first carry only the index."""
    events: list[bytes] = []
    for choice in chunk.get("choices") or ():
        for call in (choice.get("delta") or {}).get("tool_calls") or ():
            function = call.get("function") or {}
            index = call.get("index", 0)
            if call.get("id"):
                started[index] = call["id"]
                name = function.get("name") or ""
                tool: ToolInfo = {
                    "id": call["id"],
                    "toolName": name,
                    "toolAvatar": "",
                    "functionName": name,
                    "params": function.get("arguments") or "",
                    "response": "",
                }
                events.append(_tool_event("toolCall", tool))
            elif function.get("arguments"):
                tool = {
                    "id": started.get(index, ""),
                    "toolName": "",
                    "toolAvatar": "",
                    "params": function["arguments"],
                }
                events.append(_tool_event("toolParams", tool))
    return events


async def detail_events(
    header: openai.CompletionHeader,
    replies: AsyncIterator[Any],
    *,
    module_name: str,
    include_usage: bool,
    modules: Callable[[StreamEnd, str], list[ModuleRun]],
    variables: dict[str, Any] | None = None,
    messages: Iterable[dict] = (),
) -> AsyncIterator[bytes]:
    """The events of the table above; `modules(end, answer_text)` makes the records once the
    answer is complete."""
    yield sse_event(flow_node_status_body(module_name), event="flowNodeStatus")
    if variables:
        yield sse_event(variables, event="updateVariables")
    for event in tool_response_events(messages):
        yield event
    answer_parts: list[str] = []

    async def tapped() -> AsyncIterator[Any]:
        async for item in replies:
            if isinstance(item, str):
                answer_parts.append(item)
            yield item

    end: StreamEnd | None = None
    started_calls: dict[int, str] = {}
    async for chunk in openai.completion_chunks(header, tapped(), include_usage=include_usage):
        if isinstance(chunk, StreamEnd):
            end = chunk
            continue
        yield sse_event(chunk, event="answer")
        for event in tool_call_events(chunk, started_calls):
            yield event
    yield sse_event("[DONE]", event="answer")
    if end is not None:
        records = response_data(modules(end, "".join(answer_parts)))
        yield sse_event(records, event="flowResponses")
        yield sse_event(records, event="appStreamResponse")
