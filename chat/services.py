"""Answering a chat turn with a bot, and recording it.

Endpoints (externalChat, OpenAI-compatible) authenticate and parse, then call `bot_for_key`
and `bot_reply` / `bot_reply_stream`; these choose the bot, build the prompt, call the LLM
client and hand the exchange to the history recorder, whatever the outcome: complete, error
(upstream failure) or interrupted (the caller went away).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiflowy.api.errors import Forbidden, NotFound, UpstreamError
from apikeys.selectors import ApiKeyPrincipal
from bots.llm import Completion, GenerationParams, StreamEnd, llm_complete, llm_stream
from bots.selectors import BotConfig, bot_config_get
from chat.models import Message
from chat.recorder import ExchangeRecord, history_recorder


@dataclass(slots=True)
class ChatTurn:
    """Everything needed to answer one request, after parsing and authentication."""

    bot: BotConfig
    api_key: ApiKeyPrincipal
    source: str
    messages: list[dict]
    variables: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    user: str | None = None
    external_chat_id: str = ""
    custom_uid: str = ""
    answer_item_id: str = ""
    started_monotonic: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def question(self) -> str:
        for message in reversed(self.messages):
            if message["role"] == "user":
                return message["content"]
        return ""


async def bot_for_key(api_key: ApiKeyPrincipal, bot_id: int) -> BotConfig:
    """The bot, if it exists, is enabled and is in the key's scope: 404 / 403 otherwise."""
    bot = await bot_config_get(bot_id)
    if bot is None or not bot.enabled:
        raise NotFound(f"Bot {bot_id} does not exist or is disabled.", code="bot_not_found")
    if not api_key.may_use_bot(bot.id):
        raise Forbidden(f"This API key may not use bot {bot_id}.")
    return bot


_PLACEHOLDER = re.compile(r"\{\{\s*([\w.\-]+)\s*\}\}")


def fill_variables(template: str, variables: dict) -> str:
    """Plain `{{key}}` substitution; unknown keys stay as written, nothing is executed."""
    if not variables or "{{" not in template:
        return template

    def replace(match: re.Match) -> str:
        key = match.group(1)
        if key not in variables:
            return match.group(0)
        value = variables[key]
        return value if isinstance(value, str) else str(value)

    return _PLACEHOLDER.sub(replace, template)


def prompt_messages(turn: ChatTurn) -> list[dict]:
    """Bot system prompt first, then server-side history (if any), then the caller's messages."""
    messages = []
    system_prompt = fill_variables(turn.bot.system_prompt, turn.variables)
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages += turn.history
    messages += turn.messages
    return messages


def generation_params(turn: ChatTurn) -> GenerationParams:
    bot = turn.bot
    overrides = bot.allow_request_overrides
    return GenerationParams(
        model=bot.model,
        temperature=turn.temperature
        if overrides and turn.temperature is not None
        else bot.temperature,
        top_p=turn.top_p if overrides and turn.top_p is not None else bot.top_p,
        max_tokens=turn.max_tokens
        if overrides and turn.max_tokens is not None
        else bot.max_tokens or None,
        stop=turn.stop if overrides else None,
        user=turn.user,
    )


def _elapsed_ms(turn: ChatTurn) -> int:
    return int((time.monotonic() - turn.started_monotonic) * 1000)


def _record(
    turn: ChatTurn,
    *,
    answer: str,
    status: str,
    error_text: str = "",
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    first_token_ms: int | None = None,
) -> None:
    total_ms = _elapsed_ms(turn)
    history_recorder().record(
        ExchangeRecord(
            bot_id=turn.bot.id,
            api_key_id=turn.api_key.id,
            source=turn.source,
            question=turn.question,
            answer=answer,
            status=status,
            started_at=turn.started_at,
            finished_at=turn.started_at + timedelta(milliseconds=total_ms),
            error_text=error_text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            first_token_ms=first_token_ms,
            total_ms=total_ms,
            external_chat_id=turn.external_chat_id,
            custom_uid=turn.custom_uid,
            variables=turn.variables,
            answer_item_id=turn.answer_item_id,
        )
    )


async def bot_reply(turn: ChatTurn) -> Completion:
    """The whole answer. Recorded as complete, or as error (then `UpstreamError` propagates)."""
    try:
        completion = await llm_complete(
            turn.bot.provider, prompt_messages(turn), generation_params(turn)
        )
    except UpstreamError as error:
        _record(turn, answer="", status=Message.Status.ERROR, error_text=error.operator_detail)
        raise
    except asyncio.CancelledError:
        _record(turn, answer="", status=Message.Status.INTERRUPTED)
        raise
    elapsed = _elapsed_ms(turn)
    _record(
        turn,
        answer=completion.content,
        status=Message.Status.COMPLETE,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        first_token_ms=elapsed,
    )
    return completion


async def bot_reply_stream(turn: ChatTurn) -> AsyncIterator[str | StreamEnd]:
    """Text deltas as they arrive, then a `StreamEnd`. The partial answer is recorded as
    interrupted when the consumer is cancelled, and as error on an upstream failure."""
    parts: list[str] = []
    first_token_ms: int | None = None
    try:
        async for item in llm_stream(
            turn.bot.provider, prompt_messages(turn), generation_params(turn)
        ):
            if isinstance(item, StreamEnd):
                _record(
                    turn,
                    answer="".join(parts),
                    status=Message.Status.COMPLETE,
                    prompt_tokens=item.prompt_tokens,
                    completion_tokens=item.completion_tokens,
                    first_token_ms=first_token_ms,
                )
            elif first_token_ms is None:
                first_token_ms = _elapsed_ms(turn)
                parts.append(item)
            else:
                parts.append(item)
            yield item
    except UpstreamError as error:
        _record(
            turn,
            answer="".join(parts),
            status=Message.Status.ERROR,
            error_text=error.operator_detail,
            first_token_ms=first_token_ms,
        )
        raise
    except (asyncio.CancelledError, GeneratorExit):
        _record(
            turn,
            answer="".join(parts),
            status=Message.Status.INTERRUPTED,
            first_token_ms=first_token_ms,
        )
        raise
