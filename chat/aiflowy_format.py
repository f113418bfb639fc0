"""AIFlowy's bot-chat wire shapes (externalChat, and the chat WebSocket): `created` in epoch
milliseconds, camelCase usage, `choices` as one object, `status` START / MIDDLE / END / ERROR."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from aiflowy.api.errors import UpstreamError
from bots.llm import Completion, StreamEnd
from chat.services import ChatTurn, bot_reply_stream


def _now_ms() -> int:
    return int(time.time() * 1000)


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "promptTokens": prompt_tokens,
        "completionTokens": completion_tokens,
        "totalTokens": prompt_tokens + completion_tokens,
    }


def answer_body(completion: Completion) -> dict:
    """The non-stream answer."""
    return {
        "status": "END",
        "created": _now_ms(),
        "usage": _usage(completion.prompt_tokens, completion.completion_tokens),
        "choices": {"index": 0, "message": {"role": "assistant", "content": completion.content}},
    }


def _delta_body(status: str, content: str) -> dict:
    return {
        "status": status,
        "created": _now_ms(),
        "choices": {"index": 0, "delta": {"role": "assistant", "content": content}},
    }


def error_body(error: UpstreamError) -> dict:
    return {
        "status": "ERROR",
        "created": _now_ms(),
        "errorCode": error.status,
        "message": error.message,
    }


async def stream_bodies(turn: ChatTurn) -> AsyncIterator[dict]:
    """START with the first token, MIDDLE per later token, END (with usage) when done, ERROR if
    the upstream fails; each produced as soon as its token exists (nothing is held back to
    find out which token is the last: END comes on its own, with empty content)."""
    started = False
    try:
        async for item in bot_reply_stream(turn):
            if isinstance(item, StreamEnd):
                if not started:
                    yield _delta_body("START", "")
                yield {
                    **_delta_body("END", ""),
                    "usage": _usage(item.prompt_tokens, item.completion_tokens),
                }
            else:
                yield _delta_body("MIDDLE" if started else "START", item)
                started = True
    except UpstreamError as error:
        yield error_body(error)
