"""External chat endpoints, as Channels consumers ahead of Django's middleware.

Each one parses, calls one service and hands the result to its family's wire module; errors
and the end of every stream are the bases' job (`aiflowy/consumers.py`, `apikeys/auth.py`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from aiflowy.consumers import first_item_within
from aiflowy.errors import BadRequest
from aiflowy.validation import json_object
from aiflowy.wire import aiflowy as aiflowy_wire
from aiflowy.wire import fastgpt as fastgpt_wire
from aiflowy.wire import openai as openai_wire
from apikeys.auth import ApiKeyConsumer, ApiKeySocketConsumer
from apikeys.selectors import ApiKeyPrincipal
from chat.access import bot_for_model_name, bots_for_key
from chat.schemas import parse_chat_completion, parse_external_chat
from chat.services import (
    MODULE_NAME,
    ChatTurn,
    bot_reply,
    bot_reply_stream,
    chat_module_runs,
    chat_turn_for_completion,
    chat_turn_for_external_chat,
)


class ExternalChatConsumer(ApiKeyConsumer):
    """`POST /api/v1/aiBot/externalChat`: AIFlowy's bot chat, JSON or SSE (START/MIDDLE/END)."""

    async def handle(self, api_key: ApiKeyPrincipal, body: bytes) -> None:
        request = parse_external_chat(json_object(body))
        turn = await chat_turn_for_external_chat(api_key, request)
        if request.stream:
            replies = bot_reply_stream(turn)
            await self.send_sse_stream(aiflowy_wire.answer_events(replies), source=replies)
            return
        await self.send_json(aiflowy_wire.answer_body(await bot_reply(turn)))


# AIFlowy's own `/v1/chat/completions` page shows its externalChat reply shape; clients written
# against it ask for that shape with this header or query parameter (OpenAI's is the default).
REPLY_SHAPE_HEADER = b"x-aiflowy-reply"
REPLY_SHAPE_QUERY = "reply"
AIFLOWY_REPLY_SHAPE = "aiflowy"


class ChatCompletionsConsumer(ApiKeyConsumer):
    """`POST /v1/chat/completions` (and `/api/v1/…`, `/api/…`): OpenAI's chat completions,
    JSON or SSE, with FastGPT's `chatId`, `variables`, `customUid`, `responseChatItemId` and
    `detail`; AIFlowy's reply shape (bodies and errors) on request."""

    wire = openai_wire

    async def handle_request(self, body: bytes) -> None:
        shape = self.header(REPLY_SHAPE_HEADER) or self.query_param(REPLY_SHAPE_QUERY) or ""
        if shape.strip().lower() == AIFLOWY_REPLY_SHAPE:
            self.wire = aiflowy_wire
        await super().handle_request(body)

    async def handle(self, api_key: ApiKeyPrincipal, body: bytes) -> None:
        request = parse_chat_completion(json_object(body))
        turn = await chat_turn_for_completion(api_key, request)
        if self.wire is aiflowy_wire:
            await self.reply_in_aiflowy_shape(turn, stream=request.stream)
            return
        header = openai_wire.CompletionHeader.new(turn.bot.name)
        if not request.stream:
            completion = await bot_reply(turn)
            answer = openai_wire.completion_body(header, completion)
            if request.detail:
                answer |= fastgpt_wire.detail_fields(
                    chat_module_runs(turn, completion), variables=turn.variables
                )
            await self.send_json(answer)
            return
        # An upstream failure that comes at once is answered with its real status.
        stream = bot_reply_stream(turn)
        replies = await first_item_within(stream, seconds=settings.AIFLOWY_SSE_PING_SECONDS)
        if request.detail:
            await self.send_sse_stream(
                fastgpt_wire.detail_events(
                    header,
                    replies,
                    module_name=MODULE_NAME,
                    include_usage=request.include_usage,
                    modules=lambda end, text: chat_module_runs(turn, end, answer=text),
                    variables=turn.variables,
                    messages=turn.messages,
                ),
                source=stream,
                on_error=fastgpt_wire.sse_error,
            )
            return
        await self.send_sse_stream(
            openai_wire.completion_events(header, replies, include_usage=request.include_usage),
            source=stream,
        )

    async def reply_in_aiflowy_shape(self, turn: ChatTurn, *, stream: bool) -> None:
        """externalChat's body, or its START/MIDDLE/END events."""
        if not stream:
            await self.send_json(aiflowy_wire.answer_body(await bot_reply(turn)))
            return
        replies = bot_reply_stream(turn)
        await self.send_sse_stream(aiflowy_wire.answer_events(replies), source=replies)


class ModelsConsumer(ApiKeyConsumer):
    """`GET /v1/models` (the bots this key may use) and `GET /v1/models/{model}`."""

    allowed_methods = ("GET",)
    wire = openai_wire

    async def handle(self, api_key: ApiKeyPrincipal, body: bytes) -> None:
        model = self.scope.get("url_route", {}).get("kwargs", {}).get("model")
        if model is None:
            bots = await bots_for_key(api_key)
            models = [openai_wire.model_body(name=b.name, created_at=b.created_at) for b in bots]
            await self.send_json(openai_wire.model_list_body(models))
            return
        bot = await bot_for_model_name(api_key, model)
        await self.send_json(openai_wire.model_body(name=bot.name, created_at=bot.created_at))


class BotChatSocketConsumer(ApiKeySocketConsumer):
    """`ws://…/ws/v1/aiBot/chat`: externalChat over a WebSocket, for browsers and long-lived
    clients. Each client frame is an externalChat request (`botId`, `messages`, optional
    `requestId`); the answer comes as START / MIDDLE / END (or ERROR) frames, each carrying
    the `requestId`. One answer at a time per socket; closing the socket cancels the answer in
    progress, which is recorded as interrupted."""

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        request_id = content.get("requestId") if isinstance(content, dict) else None
        try:
            if self.busy:
                raise BadRequest("An answer is still streaming on this socket; wait for its END.")
            if not isinstance(content, dict):
                raise BadRequest("Each frame must be a JSON object.", code="invalid_json")
            api_key = await self.authenticate()
            turn = await chat_turn_for_external_chat(api_key, parse_external_chat(content))
        except Exception as exc:
            await self.send_error(exc, requestId=request_id)
            return
        replies = bot_reply_stream(turn)
        self.answer(aiflowy_wire.answer_frames(replies), source=replies, requestId=request_id)
