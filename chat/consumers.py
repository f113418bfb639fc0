"""External chat endpoints, as Channels consumers ahead of Django's middleware."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from aiflowy.api.auth import authenticate
from aiflowy.api.consumers import ApiConsumer
from aiflowy.api.errors import ApiError, BadRequest, InternalError, openai_error_body
from aiflowy.api.sse import sse_event
from bots.llm import StreamEnd
from chat.aiflowy_format import answer_body, stream_bodies
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
            await self.send_sse_stream(sse_event(body) async for body in stream_bodies(turn))
            return
        await self.send_json(answer_body(await bot_reply(turn)))


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


class BotChatSocketConsumer(AsyncJsonWebsocketConsumer):
    """`ws://…/ws/v1/aiBot/chat`: externalChat over a WebSocket, for browsers and long-lived
    clients. Authenticated like every external endpoint (header), or with `?api_key=` because
    browsers cannot set headers on a WebSocket. Each client frame is an externalChat request
    (`botId`, `messages`, optional `requestId`); the answer comes as START / MIDDLE / END (or
    ERROR) frames, each carrying the `requestId`. One answer at a time per socket; closing the
    socket cancels the answer in progress, which is recorded as interrupted."""

    channel_layer_alias = "__no_channel_layer__"

    async def connect(self) -> None:
        self.answer: asyncio.Task | None = None
        try:
            await self._authenticate()
        except ApiError as error:
            await self.accept()
            await self.send_json(_socket_error(error))
            await self.close(code=4000 + error.status)
            return
        await self.accept()

    async def _authenticate(self):
        headers = dict(self.scope["headers"])
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        return await authenticate(authorization, query_key=(query.get("api_key") or [None])[0])

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        request_id = content.get("requestId") if isinstance(content, dict) else None
        try:
            if self.answer is not None and not self.answer.done():
                raise BadRequest("An answer is still streaming on this socket; wait for its END.")
            if not isinstance(content, dict):
                raise BadRequest("Each frame must be a JSON object.", code="invalid_json")
            # Every frame is a request: the key is checked again (revocation, rate limit).
            api_key = await self._authenticate()
            request = parse_external_chat(content)
            bot = await bot_for_key(api_key, request.bot_id)
        except ApiError as error:
            await self.send_json({**_socket_error(error), "requestId": request_id})
            return
        turn = ChatTurn(
            bot=bot,
            api_key=api_key,
            source=Conversation.Source.EXTERNAL_CHAT,
            messages=request.messages,
        )
        self.answer = asyncio.create_task(self._stream(turn, request_id))

    async def _stream(self, turn: ChatTurn, request_id: Any) -> None:
        async for body in stream_bodies(turn):
            await self.send_json({**body, "requestId": request_id})

    async def decode_json(self, text_data: str) -> Any:
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None

    async def disconnect(self, code: int) -> None:
        if getattr(self, "answer", None) is not None and not self.answer.done():
            self.answer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.answer


def _socket_error(error: ApiError) -> dict:
    return {"status": "ERROR", "errorCode": error.status, "message": error.message}
