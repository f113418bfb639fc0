"""Validation of chat request bodies: plain functions that return typed requests or raise a
`BadRequest` naming the field."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from aiflowy.errors import BadRequest
from aiflowy.validation import parse_bool, parse_id

ROLES = ("system", "user", "assistant")
# OpenAI's newer name for system instructions; sent upstream as `system`.
OPENAI_ROLE_ALIASES = {"developer": "system"}
# The longest chat id, custom uid or answer id we store (the columns' length).
MAX_EXTERNAL_ID_LENGTH = 250


@dataclass(frozen=True, slots=True)
class ExternalChatRequest:
    bot_id: int
    messages: list[dict]
    stream: bool


def message_text(content: Any, index: int) -> str:
    """A message's text: a string, or a list of `{"type": "text", "text": ...}` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise BadRequest(
                    f"messages[{index}].content: only text parts are supported.",
                    param=f"messages[{index}].content",
                )
            if not isinstance(part.get("text"), str):
                raise BadRequest(
                    f"messages[{index}].content: a text part needs a string 'text'.",
                    param=f"messages[{index}].content",
                )
            texts.append(part["text"])
        return "".join(texts)
    raise BadRequest(
        f"messages[{index}].content must be a string.", param=f"messages[{index}].content"
    )


def parse_messages(
    value: Any, *, roles: tuple[str, ...] = ROLES, aliases: dict | None = None
) -> list[dict]:
    """An OpenAI message list, normalised to `{"role", "content": str}` items."""
    if value is None:
        raise BadRequest("'messages' is required.", param="messages")
    if not isinstance(value, list):
        raise BadRequest("'messages' must be a list of messages.", param="messages")
    if not value:
        raise BadRequest("'messages' must not be empty.", param="messages")
    messages = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise BadRequest(f"messages[{index}] must be an object.", param=f"messages[{index}]")
        role = item.get("role")
        role = (aliases or {}).get(role, role)
        if role not in roles:
            raise BadRequest(
                f"messages[{index}].role {item.get('role')!r} is not one of {', '.join(roles)}.",
                param=f"messages[{index}].role",
            )
        content = item.get("content")
        # OpenAI clients send `content: null` on assistant turns that only called tools.
        text = "" if content is None and role == "assistant" else message_text(content, index)
        messages.append({"role": role, "content": text})
    return messages


def parse_external_chat(data: dict) -> ExternalChatRequest:
    if "botId" not in data or data["botId"] in (None, ""):
        raise BadRequest("'botId' is required.", param="botId")
    return ExternalChatRequest(
        bot_id=parse_id(data["botId"], "botId"),
        messages=parse_messages(data.get("messages")),
        stream=parse_bool(data.get("stream"), "stream"),
    )


@dataclass(frozen=True, slots=True)
class ChatCompletionRequest:
    """`POST /v1/chat/completions`: OpenAI's fields we honour, and FastGPT's extensions."""

    messages: list[dict]
    model: str | None = None
    stream: bool = False
    include_usage: bool = False
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    user: str | None = None
    chat_id: str = ""
    variables: dict = field(default_factory=dict)
    custom_uid: str = ""
    response_chat_item_id: str = ""
    detail: bool = False


def parse_number(value: Any, field: str, *, minimum: float, maximum: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(f"'{field}' must be a number.", param=field)
    if not minimum <= value <= maximum:
        raise BadRequest(f"'{field}' must be between {minimum:g} and {maximum:g}.", param=field)
    return float(value)


def parse_positive_int(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"'{field}' must be a positive integer.", param=field)
    return value


def parse_string(value: Any, field: str, *, max_length: int | None = None) -> str:
    """An optional string field: absent or null is `""`."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"'{field}' must be a string.", param=field)
    if max_length is not None and len(value) > max_length:
        raise BadRequest(f"'{field}' must be at most {max_length} characters.", param=field)
    return value


def parse_stop(value: Any) -> list[str] | None:
    """OpenAI's `stop`: a string or a list of up to four strings."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and len(value) <= 4 and all(isinstance(item, str) for item in value):
        return value or None
    raise BadRequest("'stop' must be a string or a list of up to 4 strings.", param="stop")


def parse_model(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise BadRequest("'model' must be a string: a bot's name or id.", param="model")
    return value.strip() or None


def parse_chat_id(value: Any) -> str:
    """FastGPT's `chatId`: the caller's own conversation id (a string; digits are accepted)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return parse_string(value, "chatId", max_length=MAX_EXTERNAL_ID_LENGTH).strip()


def parse_variables(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("'variables' must be an object of names to values.", param="variables")
    return value


def parse_chat_completion(data: dict) -> ChatCompletionRequest:
    """OpenAI's request body. Fields we do not know are ignored, as OpenAI-compatible servers
    do; fields we know are checked and a wrong one is a 400 naming it."""
    messages = parse_messages(data.get("messages"), roles=ROLES, aliases=OPENAI_ROLE_ALIASES)
    n = data.get("n")
    if n is not None and n != 1:
        raise BadRequest("Only 'n': 1 is supported.", param="n")
    stream = parse_bool(data.get("stream"), "stream")
    stream_options = data.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise BadRequest("'stream_options' must be an object.", param="stream_options")
    include_usage = parse_bool(
        (stream_options or {}).get("include_usage"), "stream_options.include_usage"
    )
    max_tokens = parse_positive_int(data.get("max_completion_tokens"), "max_completion_tokens")
    if max_tokens is None:
        max_tokens = parse_positive_int(data.get("max_tokens"), "max_tokens")
    chat_id = parse_chat_id(data.get("chatId"))
    if chat_id and messages[-1]["role"] != "user":
        raise BadRequest(
            "With 'chatId', the last item of 'messages' is the new question and must have "
            "role 'user'.",
            param="messages",
        )
    return ChatCompletionRequest(
        messages=messages,
        model=parse_model(data.get("model")),
        stream=stream,
        include_usage=stream and include_usage,
        temperature=parse_number(data.get("temperature"), "temperature", minimum=0, maximum=2),
        top_p=parse_number(data.get("top_p"), "top_p", minimum=0, maximum=1),
        max_tokens=max_tokens,
        stop=parse_stop(data.get("stop")),
        user=parse_string(data.get("user"), "user") or None,
        chat_id=chat_id,
        variables=parse_variables(data.get("variables")),
        custom_uid=parse_string(
            data.get("customUid"), "customUid", max_length=MAX_EXTERNAL_ID_LENGTH
        ),
        response_chat_item_id=parse_string(
            data.get("responseChatItemId"),
            "responseChatItemId",
            max_length=MAX_EXTERNAL_ID_LENGTH,
        ),
        detail=parse_bool(data.get("detail"), "detail"),
    )
