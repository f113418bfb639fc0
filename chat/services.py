"""Answering a chat turn with a bot, and recording it.

Endpoints (externalChat over HTTP and WebSocket, OpenAI-compatible) authenticate and parse,
then build a `ChatTurn` (`chat_turn_for_external_chat`, or `chat_turn_for_completion` which
also loads a `chatId`'s history) and call `bot_reply` / `bot_reply_stream`. These build the
prompt, call the LLM client and record the exchange exactly once, whatever the outcome:
complete, error (upstream failure or a bug) or interrupted (the caller went away).

A `chatId` exchange is stored *before* the answer's final event or body is produced, so the
next turn, on any process, and the history API see it; other exchanges are queued for the
batch writer and stored a moment after the answer (they are never read back by id).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from channels.db import database_sync_to_async

from aiflowy import metrics
from aiflowy.errors import ApiError, BadRequest, UpstreamError, as_api_error
from aiflowy.events import ModuleRun
from aiflowy.llm import (
    Completion,
    GenerationParams,
    StreamDelta,
    StreamEnd,
    content_text,
    delta_text,
    llm_complete,
    llm_stream,
)
from aiflowy.requestcontext import current_request_id, ended_by_shutdown
from apikeys.selectors import ApiKeyPrincipal
from bots.selectors import BotConfig
from chat.access import bot_for_key, bot_for_model
from chat.models import Conversation, Message
from chat.recorder import ExchangeRecord, history_writer
from chat.schemas import (
    GENERATION_FIELDS,
    MEDIA_PARTS,
    TOOL_FIELDS,
    ChatCompletionRequest,
    ExternalChatRequest,
)
from chat.selectors import conversation_context_get
from knowledge.quotes import BotQuotes, quotes_for

# FastGPT reports one record per executed module; a bot answer is one chat module.
MODULE_NAME = "AI Chat"
MODULE_TYPE = "chatNode"


@dataclass(slots=True)
class ChatTurn:
    """Everything needed to answer one request, after parsing and authentication."""

    bot: BotConfig
    # None for turns that no API key makes (share links, the admin playground).
    api_key: ApiKeyPrincipal | None
    source: str
    messages: list[dict]
    variables: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    user: str | None = None
    max_completion_tokens: int | None = None
    # The caller's other OpenAI fields (tools, response_format, seed, ...), for the provider.
    extra: dict = field(default_factory=dict)
    external_chat_id: str = ""
    custom_uid: str = ""
    answer_item_id: str = ""
    knowledge: BotQuotes | None = None
    started_monotonic: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def api_key_id(self) -> int | None:
        return self.api_key.id if self.api_key is not None else None

    @property
    def question(self) -> str:
        """The caller's last question as text; none when this turn sends tool results."""
        if self.messages and self.messages[-1]["role"] in _TOOL_ROLES:
            return ""
        for message in reversed(self.messages):
            if message["role"] == "user":
                return content_text(message["content"])
        return ""

    @property
    def tool_results(self) -> list[dict]:
        """The tool results that end the caller's messages: this turn's input after a tool
        call (`function` is the old form, named by its function)."""
        results: list[dict] = []
        for message in reversed(self.messages):
            if message["role"] not in _TOOL_ROLES:
                break
            call_id = message.get("tool_call_id") or message.get("name") or ""
            results.append({"tool_call_id": call_id, "content": content_text(message["content"])})
        results.reverse()
        return results


_TOOL_ROLES = ("tool", "function")


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
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)

    return _PLACEHOLDER.sub(replace, template)


def prompt_messages(turn: ChatTurn) -> list[dict]:
    """Bot system prompt first, then server-side history (if any), then the caller's messages."""
    messages = []
    system_prompt = fill_variables(turn.bot.system_prompt, turn.variables)
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    if turn.knowledge is not None and turn.knowledge.system_message:
        messages.append({"role": "system", "content": turn.knowledge.system_message})
    messages += turn.history
    messages += turn.messages
    return messages


async def chat_turn_for_external_chat(
    api_key: ApiKeyPrincipal, request: ExternalChatRequest
) -> ChatTurn:
    """The turn for an AIFlowy externalChat request (HTTP or WebSocket): the caller sends the
    whole context."""
    turn = ChatTurn(
        bot=await bot_for_key(api_key, request.bot_id),
        api_key=api_key,
        source=Conversation.Source.EXTERNAL_CHAT,
        messages=request.messages,
    )
    turn.knowledge = await quotes_for(turn.bot.id, turn.question)
    return turn


async def chat_turn_for_completion(
    api_key: ApiKeyPrincipal, request: ChatCompletionRequest
) -> ChatTurn:
    """The turn for an OpenAI-compatible request: its bot, and with a `chatId` the stored
    history and variables. A stateless request touches no table here (cached lookups only)."""
    bot = await bot_for_model(api_key, request.model)
    extra = request.passthrough
    refused_param_check(bot, request, extra)
    turn = ChatTurn(
        bot=bot,
        api_key=api_key,
        source=Conversation.Source.OPENAI,
        messages=request.messages,
        variables=request.variables,
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.max_tokens,
        stop=request.stop,
        user=request.user,
        max_completion_tokens=request.max_completion_tokens,
        extra=extra,
        external_chat_id=request.chat_id,
        custom_uid=request.custom_uid,
        answer_item_id=request.response_chat_item_id,
    )
    if turn.external_chat_id:
        await chat_turn_load_history(turn)
    turn.knowledge = await quotes_for(turn.bot.id, turn.question)
    return turn


async def chat_turn_load_history(turn: ChatTurn) -> None:
    """FastGPT's `chatId`: the stored conversation (this bot, this key) supplies the context,
    windowed by the bot's `history_window`; only the caller's last message (or the tool
    results that end its messages) is the new input; stored variables are merged under the
    request's (the request wins)."""
    context = await database_sync_to_async(conversation_context_get)(
        bot_id=turn.bot.id,
        api_key_id=turn.api_key_id,
        external_chat_id=turn.external_chat_id,
        history_window=turn.bot.history_window,
    )
    turn.history = context.history
    tool_results = len(turn.tool_results)
    turn.messages = turn.messages[-tool_results:] if tool_results else turn.messages[-1:]
    turn.variables = {**context.variables, **turn.variables}


def conversation_delete(*, bot_id: int, api_key_id: int, external_chat_id: str) -> bool:
    """Delete the key's conversation with this `chatId` and its messages; False if none."""
    if not external_chat_id:
        return False
    deleted, _ = Conversation.objects.filter(
        bot_id=bot_id, api_key_id=api_key_id, external_chat_id=external_chat_id
    ).delete()
    return deleted > 0


def _refused(param: str, what: str) -> BadRequest:
    return BadRequest(
        f"This bot does not accept '{param}': its operator does not let callers send {what}.",
        code="unsupported_parameter",
        param=param,
    )


def _asks_for_something(name: str, value: object) -> bool:
    """False for values that ask for nothing a switch governs (`tool_choice: "none"`,
    `logprobs: false`, `n: 1`), which are never refused."""
    return not (value is False or value == "none" or (name == "n" and value == 1))


def refused_param_check(bot: BotConfig, request: ChatCompletionRequest, extra: dict) -> None:
    """The operator's per-bot switches: tools, media, generation overrides. A request using a
    switched-off feature is refused naming the field, rather than answered without it."""
    if extra:
        if not bot.allow_request_tools:
            for name in TOOL_FIELDS:
                if name in extra and _asks_for_something(name, extra[name]):
                    raise _refused(name, "tools")
        if not bot.allow_request_overrides:
            for name in GENERATION_FIELDS:
                if name in extra and _asks_for_something(name, extra[name]):
                    raise _refused(name, "generation settings")
        if not bot.allow_request_media and (
            "audio" in extra or "audio" in extra.get("modalities", ())
        ):
            raise _refused("audio" if "audio" in extra else "modalities", "audio")
    if bot.allow_request_media:
        return
    for index, message in enumerate(request.messages):
        if type(message.get("content")) is list:
            for part_index, part in enumerate(message["content"]):
                if part.get("type") in MEDIA_PARTS:
                    param = f"messages[{index}].content[{part_index}]"
                    raise _refused(param, "images or other media")


def generation_params(turn: ChatTurn) -> GenerationParams:
    bot = turn.bot
    overrides = bot.allow_request_overrides
    max_tokens = turn.max_tokens if overrides and turn.max_tokens is not None else None
    # A caller's `max_completion_tokens` goes under that name (reasoning models accept no
    # other); the bot's own limit and a caller's `max_tokens` go as `max_tokens`.
    by_new_name = max_tokens is not None and turn.max_completion_tokens is not None
    return GenerationParams(
        model=bot.model,
        temperature=turn.temperature
        if overrides and turn.temperature is not None
        else bot.temperature,
        top_p=turn.top_p if overrides and turn.top_p is not None else bot.top_p,
        max_tokens=None if by_new_name else (max_tokens or bot.max_tokens or None),
        max_completion_tokens=max_tokens if by_new_name else None,
        stop=turn.stop if overrides else None,
        user=turn.user,
        extra=turn.extra or None,
    )


def _elapsed_ms(turn: ChatTurn) -> int:
    return int((time.monotonic() - turn.started_monotonic) * 1000)


SHUTDOWN_ERROR = "ended by server shutdown (the caller got a final error event)"


def _observe(
    turn: ChatTurn,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    first_token_ms: int | None,
) -> None:
    """Metrics of one answer (every answer becomes exactly one exchange: counted once)."""
    # Share-link and playground turns have no key: counted under "-".
    bot, key = str(turn.bot.id), str(turn.api_key_id or "-")
    if prompt_tokens:
        metrics.labelled(metrics.TOKENS, bot, key, "in").inc(prompt_tokens)
    if completion_tokens:
        metrics.labelled(metrics.TOKENS, bot, key, "out").inc(completion_tokens)
    if first_token_ms is not None:
        metrics.labelled(metrics.TIME_TO_FIRST_TOKEN, bot).observe(first_token_ms / 1000)


def _exchange(
    turn: ChatTurn,
    *,
    answer: str,
    status: str,
    error_text: str = "",
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    first_token_ms: int | None = None,
    tool_calls: list[dict] | None = None,
) -> ExchangeRecord:
    total_ms = _elapsed_ms(turn)
    if status == Message.Status.INTERRUPTED and ended_by_shutdown():
        # Not the caller leaving: the server ended the stream (with a final error event).
        status, error_text = Message.Status.ERROR, SHUTDOWN_ERROR
    _observe(turn, prompt_tokens, completion_tokens, first_token_ms)
    return ExchangeRecord(
        request_id=current_request_id(),
        bot_id=turn.bot.id,
        api_key_id=turn.api_key_id,
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
        tool_calls=tool_calls,
        tool_results=turn.tool_results,
        quoted_items=turn.knowledge.quoted_items() if turn.knowledge is not None else [],
    )


async def _store(turn: ChatTurn, exchange: ExchangeRecord) -> None:
    """Stored now when the next turn or the history API reads it back (`chatId`), else
    queued for the batch writer."""
    if turn.external_chat_id:
        await history_writer().write(exchange)
    else:
        history_writer().add(exchange)


def _failure_text(exc: BaseException) -> str:
    """What the operator reads in history (never sent to the caller): the upstream's own text,
    or the unexpected exception itself."""
    if isinstance(exc, UpstreamError):
        return exc.operator_detail
    if isinstance(exc, ApiError):
        return exc.message
    return f"internal error: {type(exc).__name__}: {exc}"


async def bot_reply(turn: ChatTurn) -> Completion:
    """The whole answer, recorded exactly once: complete, error (the error propagates, as an
    `ApiError`) or interrupted (the caller's task was cancelled)."""
    try:
        completion = await llm_complete(
            turn.bot.provider, prompt_messages(turn), generation_params(turn)
        )
    except asyncio.CancelledError:
        history_writer().add(_exchange(turn, answer="", status=Message.Status.INTERRUPTED))
        raise
    except Exception as exc:
        error = as_api_error(exc, where="bot_reply")
        failed = _exchange(
            turn, answer="", status=Message.Status.ERROR, error_text=_failure_text(exc)
        )
        await _store(turn, failed)
        raise error from None
    elapsed = _elapsed_ms(turn)
    await _store(
        turn,
        _exchange(
            turn,
            answer=completion.content,
            status=Message.Status.COMPLETE,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            first_token_ms=elapsed,
            tool_calls=completion.tool_calls,
        ),
    )
    return completion


async def bot_reply_stream(turn: ChatTurn) -> AsyncIterator[str | StreamDelta | StreamEnd]:
    """Text deltas (and other pieces: tool calls, ...) as they arrive, then a `StreamEnd`,
    which comes only once the exchange is stored (for `chatId`). Recorded exactly once:
    complete; error on a failure, which propagates as an `ApiError`; interrupted when the
    consumer goes away (cancelled, or the generator closed) before the end, with the partial
    answer."""
    parts: list[str] = []
    first_token_ms: int | None = None
    end: StreamEnd | None = None
    recorded = False
    try:
        async for item in llm_stream(
            turn.bot.provider, prompt_messages(turn), generation_params(turn)
        ):
            if isinstance(item, StreamEnd):
                end = item
                continue
            if first_token_ms is None:
                first_token_ms = _elapsed_ms(turn)
            if text := delta_text(item):
                parts.append(text)
            yield item
        if end is None:
            raise UpstreamError("The model provider ended the answer early.")
        recorded = True
        await _store(
            turn,
            _exchange(
                turn,
                answer="".join(parts),
                status=Message.Status.COMPLETE,
                prompt_tokens=end.prompt_tokens,
                completion_tokens=end.completion_tokens,
                first_token_ms=first_token_ms,
                tool_calls=end.tool_calls,
            ),
        )
    except (asyncio.CancelledError, GeneratorExit):
        if not recorded:
            interrupted = _exchange(
                turn,
                answer="".join(parts),
                status=Message.Status.INTERRUPTED,
                first_token_ms=first_token_ms,
            )
            history_writer().add(interrupted)
        raise
    except Exception as exc:
        if recorded:
            raise
        recorded = True
        error = as_api_error(exc, where="bot_reply_stream")
        failed = _exchange(
            turn,
            answer="".join(parts),
            status=Message.Status.ERROR,
            error_text=_failure_text(exc),
            first_token_ms=first_token_ms,
        )
        await _store(turn, failed)
        raise error from None
    yield end


def chat_module_runs(
    turn: ChatTurn, usage: Completion | StreamEnd, *, answer: str | None = None
) -> list[ModuleRun]:
    """What FastGPT's `detail` reports about this answer: a "Dataset Search" module per
    knowledge base searched, then the chat module with the quotes it was given. `answer` is the
    streamed text (a `Completion` carries its own)."""
    if answer is None:
        answer = getattr(usage, "content", "") or ""
    params = generation_params(turn)
    knowledge = turn.knowledge
    return [
        *(knowledge.modules if knowledge is not None else []),
        ModuleRun(
            name=MODULE_NAME,
            kind=MODULE_TYPE,
            model=usage.model or turn.bot.model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            running_seconds=time.monotonic() - turn.started_monotonic,
            query=turn.question,
            history=[*turn.history, *turn.messages],
            answer=answer,
            price=turn.bot.price_of(usage.prompt_tokens, usage.completion_tokens),
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            complete_messages=[
                *prompt_messages(turn),
                {"role": "assistant", "content": answer},
            ],
            quote_list=knowledge.quote_list() if knowledge is not None else [],
        ),
    ]
