"""Wire shapes of the OpenAI-compatible endpoints, and FastGPT's `detail` additions.

Pure functions from our results to JSON-ready dicts; the consumers only sequence them. The
shapes are OpenAI's (the `openai` SDKs parse them into their types): `created` in epoch
seconds, `usage` in snake_case, `model` the bot's name (what `GET /v1/models` lists).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from bots.llm import Completion, StreamEnd
from bots.selectors import BotConfig
from chat.services import ChatTurn

# FastGPT reports one record per executed module; a bot answer is one chat module.
MODULE_NAME = "AI Chat"
MODULE_TYPE = "chatNode"
_FASTGPT_OBJ = {"system": "System", "user": "Human", "assistant": "AI"}


@dataclass(frozen=True, slots=True)
class CompletionHeader:
    """What every chunk of one answer repeats unchanged: id, creation second and model."""

    id: str
    created: int
    model: str

    @classmethod
    def new(cls, model: str) -> CompletionHeader:
        return cls(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=model)


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_body(header: CompletionHeader, completion: Completion) -> dict:
    """`chat.completion`: the whole answer."""
    return {
        "id": header.id,
        "object": "chat.completion",
        "created": header.created,
        "model": header.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.content, "refusal": None},
                "logprobs": None,
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": usage_body(completion.prompt_tokens, completion.completion_tokens),
    }


def chunk_body(
    header: CompletionHeader,
    delta: dict,
    *,
    finish_reason: str | None = None,
    include_usage: bool = False,
) -> dict:
    """`chat.completion.chunk` with one choice. With `include_usage`, OpenAI sends
    `"usage": null` on every chunk but the final usage chunk; so do we."""
    body = {
        "id": header.id,
        "object": "chat.completion.chunk",
        "created": header.created,
        "model": header.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if include_usage:
        body["usage"] = None
    return body


def usage_chunk_body(header: CompletionHeader, end: StreamEnd) -> dict:
    """The chunk after the `finish_reason` chunk when `stream_options.include_usage` is set."""
    return {
        "id": header.id,
        "object": "chat.completion.chunk",
        "created": header.created,
        "model": header.model,
        "choices": [],
        "usage": usage_body(end.prompt_tokens, end.completion_tokens),
    }


def text_chunk(header: CompletionHeader, text: str, *, first: bool, include_usage: bool) -> dict:
    """A piece of the answer; the first one also carries the role, as OpenAI's does."""
    delta = {"role": "assistant", "content": text} if first else {"content": text}
    return chunk_body(header, delta, include_usage=include_usage)


def closing_chunks(
    header: CompletionHeader, end: StreamEnd, *, role_sent: bool, include_usage: bool
) -> list[dict]:
    """What ends an answer: the role (if no text came at all), the `finish_reason` chunk, and
    the usage chunk (`choices: []`) when the caller asked for it."""
    chunks = []
    if not role_sent:
        chunks.append(text_chunk(header, "", first=True, include_usage=include_usage))
    chunks.append(
        chunk_body(header, {}, finish_reason=end.finish_reason, include_usage=include_usage)
    )
    if include_usage:
        chunks.append(usage_chunk_body(header, end))
    return chunks


def response_data(
    turn: ChatTurn, *, model: str, prompt_tokens: int, completion_tokens: int
) -> list[dict]:
    """FastGPT's `responseData` (`detail: true`): one record per executed module.

    `historyPreview` is the conversation as the model saw it (stored history, then the caller's
    messages), without the bot's own system prompt: that is operator configuration, and may hold
    the values of other callers' variables.
    """
    preview = [
        {"obj": _FASTGPT_OBJ.get(message["role"], "Human"), "value": message["content"]}
        for message in [*turn.history, *turn.messages]
    ]
    return [
        {
            "moduleName": MODULE_NAME,
            "moduleType": MODULE_TYPE,
            "model": model or turn.bot.model,
            "tokens": prompt_tokens + completion_tokens,
            "inputTokens": prompt_tokens,
            "outputTokens": completion_tokens,
            "runningTime": round(time.monotonic() - turn.started_monotonic, 3),
            "query": turn.question,
            "historyPreview": preview,
        }
    ]


def flow_node_status_body() -> dict:
    return {"status": "running", "name": MODULE_NAME}


def model_body(bot: BotConfig) -> dict:
    """One bot as an OpenAI model: its `id` is the bot's name (the bot's numeric id is
    accepted as `model` too)."""
    created = int(bot.created_at.timestamp()) if bot.created_at else 0
    return {"id": bot.name, "object": "model", "created": created, "owned_by": "aiflowy"}


def model_list_body(bots: list[BotConfig]) -> dict:
    return {"object": "list", "data": [model_body(bot) for bot in bots]}
