"""External chat endpoints, as Channels consumers ahead of Django's middleware."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiflowy.api.auth import authenticate
from aiflowy.api.consumers import ApiConsumer
from aiflowy.api.errors import UpstreamError
from aiflowy.api.sse import sse_event
from bots.llm import StreamEnd
from chat.models import Conversation
from chat.schemas import parse_external_chat
from chat.services import ChatTurn, bot_for_key, bot_reply, bot_reply_stream


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
