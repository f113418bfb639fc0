"""The chat endpoints in the OpenAPI document (see `aiflowy.openapi`): every type below is the
one the endpoint validates with or answers from."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from aiflowy.openapi import Operation, return_type, serializer_type
from aiflowy.wire import aiflowy as aiflowy_wire
from aiflowy.wire import fastgpt as fastgpt_wire
from aiflowy.wire import openai as openai_wire
from chat.apis import (
    ChatHistoriesApi,
    ChatRecordsApi,
    HistoriesQuery,
    HistoryDeleteQuery,
    RecordsQuery,
)
from chat.schemas import MAX_MODEL_LENGTH, ChatCompletionRequest, ExternalChatRequest

AnswerEvent = return_type(aiflowy_wire.error_frame) | aiflowy_wire.AnswerFrame
ChunkEvent = openai_wire.ChunkBody | return_type(openai_wire.error_body)
# With `detail: true`, FastGPT's named events (aiflowy/wire/fastgpt.py says when each comes).
DETAIL_EVENTS = {
    "flowNodeStatus": return_type(fastgpt_wire.flow_node_status_body),
    "updateVariables": fastgpt_wire.VariablesBody,
    "toolResponse": fastgpt_wire.ToolEventBody,
    "answer": openai_wire.ChunkBody,
    "toolCall": fastgpt_wire.ToolEventBody,
    "toolParams": fastgpt_wire.ToolEventBody,
    "flowResponses": fastgpt_wire.ResponseRecords,
    "appStreamResponse": fastgpt_wire.ResponseRecords,
    "error": return_type(fastgpt_wire.error_body),
}


def _page(item: dict, *, chat: bool) -> dict:
    """The history API's page envelope around `item`s (chat/apis.py)."""
    properties = {
        "botId": {"type": "integer"},
        "total": {"type": "integer"},
        "offset": {"type": "integer"},
        "pageSize": {"type": "integer"},
        "list": {"type": "array", "items": item},
    }
    if chat:
        properties["chatId"] = {"type": "string"}
    return {"type": "object", "properties": properties, "required": sorted(properties)}


OPERATIONS = [
    Operation(
        method="post",
        paths=("/api/v1/aiBot/externalChat",),
        summary="Chat with a bot (AIFlowy)",
        tag="AIFlowy chat",
        description="JSON answer, or with `stream: true` server-sent events START, MIDDLE…, "
        "END (or a final ERROR). The same request, one per text frame, over the WebSocket "
        "`/ws/v1/aiBot/chat`.",
        body=ExternalChatRequest,
        responses={200: return_type(aiflowy_wire.answer_body)},
        events=AnswerEvent,
        error=return_type(aiflowy_wire.error_body),
        error_statuses=(400, 401, 403, 404, 429, 500, 502, 503, 504),
    ),
    Operation(
        method="post",
        paths=("/v1/chat/completions", "/api/v1/chat/completions", "/api/chat/completions"),
        summary="Chat completions (OpenAI-compatible, with FastGPT's extensions)",
        tag="OpenAI-compatible",
        description="`model` names a bot (its name or id). With `stream: true`, "
        "`chat.completion.chunk` events ending with `data: [DONE]`; with `detail: true`, "
        "FastGPT's named events (`flowNodeStatus`, `answer`, `flowResponses`).",
        body=ChatCompletionRequest,
        responses={200: return_type(openai_wire.completion_body)},
        events=ChunkEvent,
        named_events=DETAIL_EVENTS,
        events_done=True,
        error=return_type(openai_wire.error_body),
        error_statuses=(400, 401, 403, 404, 429, 500, 502, 503, 504),
    ),
    Operation(
        method="get",
        paths=("/v1/models", "/api/v1/models"),
        summary="The bots this key may use, as models",
        tag="OpenAI-compatible",
        responses={200: return_type(openai_wire.model_list_body)},
        error=return_type(openai_wire.error_body),
        error_statuses=(401, 429, 500, 503),
    ),
    Operation(
        method="get",
        paths=("/v1/models/{model}", "/api/v1/models/{model}"),
        summary="One bot as a model",
        tag="OpenAI-compatible",
        path_parameters={
            "model": Annotated[str, StringConstraints(min_length=1, max_length=MAX_MODEL_LENGTH)]
        },
        responses={200: return_type(openai_wire.model_body)},
        error=return_type(openai_wire.error_body),
        error_statuses=(401, 403, 404, 429, 500, 503),
    ),
    Operation(
        method="get",
        paths=("/api/v1/chat/histories",),
        summary="The key's conversations with a bot, newest first",
        tag="History",
        query=HistoriesQuery,
        response_schemas={
            200: _page(serializer_type(ChatHistoriesApi.OutputSerializer), chat=False)
        },
        error=return_type(aiflowy_wire.error_body),
    ),
    Operation(
        method="delete",
        paths=("/api/v1/chat/histories",),
        summary="Delete one conversation and its messages",
        tag="History",
        query=HistoryDeleteQuery,
        response_schemas={
            200: {
                "type": "object",
                "properties": {
                    "botId": {"type": "integer"},
                    "chatId": {"type": "string"},
                    "deleted": {"const": True},
                },
                "required": ["botId", "chatId", "deleted"],
            }
        },
        error=return_type(aiflowy_wire.error_body),
    ),
    Operation(
        method="get",
        paths=("/api/v1/chat/records",),
        summary="One conversation's messages, oldest first",
        tag="History",
        query=RecordsQuery,
        response_schemas={200: _page(serializer_type(ChatRecordsApi.OutputSerializer), chat=True)},
        error=return_type(aiflowy_wire.error_body),
    ),
]

# Shown under components.schemas: what the WebSocket carries (OpenAPI has no WebSocket paths).
SOCKET_SCHEMAS = {"BotChatSocketFrame": AnswerEvent}
