"""Validation of chat request bodies: plain functions that return typed requests or raise a
`BadRequest` naming the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiflowy.api.errors import BadRequest

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True, slots=True)
class ExternalChatRequest:
    bot_id: int
    messages: list[dict]
    stream: bool


def parse_id(value: Any, field: str) -> int:
    """Ids are integers; callers may send them as strings (AIFlowy's do)."""
    if isinstance(value, bool):
        raise BadRequest(f"'{field}' must be an integer id.", param=field)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise BadRequest(f"'{field}' must be an integer id (or a string of digits).", param=field)


def parse_bool(value: Any, field: str, default: bool = False) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"'{field}' must be true or false.", param=field)
    return value


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
        messages.append({"role": role, "content": message_text(item.get("content"), index)})
    return messages


def parse_external_chat(data: dict) -> ExternalChatRequest:
    if "botId" not in data or data["botId"] in (None, ""):
        raise BadRequest("'botId' is required.", param="botId")
    return ExternalChatRequest(
        bot_id=parse_id(data["botId"], "botId"),
        messages=parse_messages(data.get("messages")),
        stream=parse_bool(data.get("stream"), "stream"),
    )
