"""External chat endpoints, as Channels consumers ahead of Django's middleware."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from django.conf import settings

from aiflowy.api.auth import authenticate
from aiflowy.api.consumers import ApiConsumer
from aiflowy.api.errors import ApiError, InternalError, UpstreamError, openai_error_body
from aiflowy.api.sse import sse_event
from bots.llm import StreamEnd
from chat.models import Conversation
from chat.openai_format import (
    CompletionHeader,
    closing_chunks,
    completion_body,
    flow_node_status_body,
    model_body,
    model_list_body,
    response_data,
    text_chunk,
)
from chat.schemas import ChatCompletionRequest, parse_chat_completion, parse_external_chat
from chat.services import (
    ChatTurn,
    bot_for_key,
    bot_for_model_name,
    bot_reply,
    bot_reply_stream,
    bots_for_key,
    chat_turn_for_completion,
)

logger = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _aiflowy_usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "promptTokens": prompt_tokens,
        "completionTokens": completion_tokens,
        "totalTokens": prompt_tokens + completion_tokens,
    }


class ExternalChatConsumer(ApiConsumer):
    """`POST /api/v1/aiBot/externalChat`: AIFlowy's bot chat, JSON or SSE (START/MIDDLE/END)."""

    async def handle_request(self, body: bytes) -> None:
        api_key = await authenticate(self.header(b"authorization"))
        request = parse_external_chat(self.parse_json_object(body))
        bot = await bot_for_key(api_key, request.bot_id)
        turn = ChatTurn(
            bot=bot,
            api_key=api_key,
            source=Conversation.Source.EXTERNAL_CHAT,
            messages=request.messages,
        )
        if request.stream:
            await self.start_sse()
            await self.send_sse_stream(self._events(turn))
            return
        completion = await bot_reply(turn)
        await self.send_json(
            {
                "status": "END",
                "created": _now_ms(),
                "usage": _aiflowy_usage(completion.prompt_tokens, completion.completion_tokens),
                "choices": {
                    "index": 0,
                    "message": {"role": "assistant", "content": completion.content},
                },
            }
        )

    async def _events(self, turn: ChatTurn) -> AsyncIterator[bytes]:
        """START with the first token, MIDDLE per later token, END (with usage) when done,
        ERROR if the upstream fails; each sent as soon as it exists."""
        started = False
        try:
            async for item in bot_reply_stream(turn):
                if isinstance(item, StreamEnd):
                    if not started:
                        yield self._delta_event("START", "")
                    yield sse_event(
                        {
                            "status": "END",
                            "created": _now_ms(),
                            "usage": _aiflowy_usage(item.prompt_tokens, item.completion_tokens),
                            "choices": {
                                "index": 0,
                                "delta": {"role": "assistant", "content": ""},
                            },
                        }
                    )
                else:
                    yield self._delta_event("MIDDLE" if started else "START", item)
                    started = True
        except UpstreamError as error:
            yield sse_event(
                {
                    "status": "ERROR",
                    "created": _now_ms(),
                    "errorCode": error.status,
                    "message": error.message,
                }
            )

    @staticmethod
    def _delta_event(status: str, content: str) -> bytes:
        return sse_event(
            {
                "status": status,
                "created": _now_ms(),
                "choices": {"index": 0, "delta": {"role": "assistant", "content": content}},
            }
        )


class OpenAiConsumer(ApiConsumer):
    """Base of the OpenAI-compatible endpoints: every error in OpenAI's body, which the
    `openai` SDKs turn into their exception classes by status code."""

    def render_error(self, error: ApiError) -> dict[str, Any]:
        return openai_error_body(error)


class ChatCompletionsConsumer(OpenAiConsumer):
    """`POST /v1/chat/completions` (and `/api/v1/chat/completions`): OpenAI's chat completions,
    JSON or SSE, with FastGPT's `chatId`, `variables`, `customUid`, `responseChatItemId` and
    `detail`."""

    async def handle_request(self, body: bytes) -> None:
        api_key = await authenticate(self.header(b"authorization"))
        request = parse_chat_completion(self.parse_json_object(body))
        turn = await chat_turn_for_completion(api_key, request)
        header = CompletionHeader.new(turn.bot.name)
        if not request.stream:
            completion = await bot_reply(turn)
            answer = completion_body(header, completion)
            if request.detail:
                answer["responseData"] = response_data(
                    turn,
                    model=completion.model,
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                )
            await self.send_json(answer)
            return
        replies = bot_reply_stream(turn)
        first = await _first_reply(replies, wait_seconds=settings.AIFLOWY_SSE_PING_SECONDS)
        await self.start_sse()
        await self.send_sse_stream(self._events(turn, request, header, _resumed(first, replies)))

    async def _events(
        self,
        turn: ChatTurn,
        request: ChatCompletionRequest,
        header: CompletionHeader,
        replies: AsyncIterator[str | StreamEnd],
    ) -> AsyncIterator[bytes]:
        """OpenAI chunks (role in the first delta, `finish_reason` in the last, then the usage
        chunk if asked), `[DONE]`; or an error event then `[DONE]`. With `detail`, FastGPT's
        named events: `flowNodeStatus`, `answer` (the same chunks), `flowResponses`, `error`."""
        answer_event = "answer" if request.detail else None
        if request.detail:
            yield sse_event(flow_node_status_body(), event="flowNodeStatus")
        end: StreamEnd | None = None
        first_text = True
        try:
            async for item in replies:
                if isinstance(item, StreamEnd):
                    end = item
                    closing = closing_chunks(
                        header, end, role_sent=not first_text, include_usage=request.include_usage
                    )
                    for chunk in closing:
                        yield sse_event(chunk, event=answer_event)
                else:
                    chunk = text_chunk(
                        header, item, first=first_text, include_usage=request.include_usage
                    )
                    first_text = False
                    yield sse_event(chunk, event=answer_event)
        except Exception as exc:
            if isinstance(exc, ApiError):
                error = exc
            else:
                logger.exception("Unhandled error in a chat completion stream")
                error = InternalError("Internal error; the operator has the details.")
            if request.detail:
                yield sse_event(openai_error_body(error), event="error")
            else:
                yield sse_event(openai_error_body(error))
                yield sse_event("[DONE]")
            return
        yield sse_event("[DONE]", event=answer_event)
        if request.detail and end is not None:
            records = response_data(
                turn,
                model=end.model,
                prompt_tokens=end.prompt_tokens,
                completion_tokens=end.completion_tokens,
            )
            yield sse_event(records, event="flowResponses")


async def _first_reply(
    replies: AsyncIterator[str | StreamEnd], *, wait_seconds: float
) -> asyncio.Future:
    """Start the answer and wait up to `wait_seconds` for its first item, so that an upstream
    failure that comes at once is answered with its real status (which the SDKs raise as
    `APIStatusError`) instead of an error event in a 200 stream. A slow first token still gets
    the stream opened after `wait_seconds`, with its keep-alive pings."""
    first = asyncio.ensure_future(anext(replies))
    try:
        done, _ = await asyncio.wait({first}, timeout=wait_seconds)
    except asyncio.CancelledError:
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await first
        raise
    if done and first.exception() is not None:
        raise first.exception()
    return first


async def _resumed(
    first: asyncio.Future, replies: AsyncIterator[str | StreamEnd]
) -> AsyncIterator[str | StreamEnd]:
    yield await first
    async for item in replies:
        yield item


class ModelsConsumer(OpenAiConsumer):
    """`GET /v1/models` (the bots this key may use) and `GET /v1/models/{model}`."""

    allowed_methods = ("GET",)

    async def handle_request(self, body: bytes) -> None:
        api_key = await authenticate(self.header(b"authorization"))
        model = self.scope.get("url_route", {}).get("kwargs", {}).get("model")
        if model is None:
            await self.send_json(model_list_body(await bots_for_key(api_key)))
        else:
            await self.send_json(model_body(await bot_for_model_name(api_key, model)))
