"""The chat page's own API (share links and the admin playground).

JSON answers are plain objects; errors are `{"code", "message"}` with the HTTP status, the
message written for the person in front of the page (the page shows it as text). An answer
streams as named SSE events:
- `chat` `{"chatId"}`: the chat the answer belongs to (new chats get their id here),
- `delta` `{"text"}`: the next piece of the answer,
- `end` `{"html", "usage", ["detail"]}`: the whole answer rendered as sanitised HTML,
- `error` `{"code", "message"}`: the answer failed; like `end`, it is the final event.

The body functions return TypedDicts: the OpenAPI document (`shares/openapi.py`) is generated
from them.
"""

from __future__ import annotations

from typing import Any, NotRequired

from typing_extensions import TypedDict

from aiflowy.errors import ApiError
from aiflowy.markdown import markdown_to_safe_html
from aiflowy.sse import sse_event


class ShareError(TypedDict):
    code: str
    message: str


class PageBot(TypedDict):
    name: str
    welcome: str


class ChatListItem(TypedDict):
    chatId: str
    title: str
    updatedAt: str


class OpenBody(TypedDict):
    """The page opens: its bot, what it shows, and the user's recent chats, newest first."""

    bot: PageBot
    showDetail: bool
    showQuotes: bool
    chats: list[ChatListItem]


class MessageItem(TypedDict):
    role: str
    content: str
    status: str
    # Answers only: the content as sanitised HTML.
    html: NotRequired[str]


class MessagesBody(TypedDict):
    chatId: str
    messages: list[MessageItem]


class ChatEvent(TypedDict):
    """`event: chat`."""

    chatId: str


class DeltaEvent(TypedDict):
    """`event: delta`."""

    text: str


class PageUsage(TypedDict):
    promptTokens: int
    completionTokens: int
    totalTokens: int


class EndEvent(TypedDict):
    """`event: end`: the final event of an answer that succeeded."""

    html: str
    usage: PageUsage
    # With the link's "show detail"/"show quotes": the quotes and FastGPT's responseData.
    detail: NotRequired[dict[str, Any]]


def error_body(error: ApiError) -> ShareError:
    return {"code": error.code, "message": error.message}


def sse_error(error: ApiError) -> bytes:
    return sse_event(error_body(error), event="error")


def open_body(
    *, bot_name: str, welcome: str, show_detail: bool, show_quotes: bool, chats: list[ChatListItem]
) -> OpenBody:
    return {
        "bot": {"name": bot_name, "welcome": welcome},
        "showDetail": show_detail,
        "showQuotes": show_quotes,
        "chats": chats,
    }


def messages_body(*, chat_id: str, messages: list[MessageItem]) -> MessagesBody:
    return {"chatId": chat_id, "messages": messages}


def chat_event_body(chat_id: str) -> ChatEvent:
    return {"chatId": chat_id}


def chat_event(chat_id: str) -> bytes:
    return sse_event(chat_event_body(chat_id), event="chat")


def delta_event_body(text: str) -> DeltaEvent:
    return {"text": text}


def delta_event(text: str) -> bytes:
    return sse_event(delta_event_body(text), event="delta")


def end_event_body(
    *, answer: str, prompt_tokens: int, completion_tokens: int, detail: dict | None
) -> EndEvent:
    body: EndEvent = {
        "html": markdown_to_safe_html(answer),
        "usage": {
            "promptTokens": prompt_tokens,
            "completionTokens": completion_tokens,
            "totalTokens": prompt_tokens + completion_tokens,
        },
    }
    if detail is not None:
        body["detail"] = detail
    return body


def end_event(
    *, answer: str, prompt_tokens: int, completion_tokens: int, detail: dict | None
) -> bytes:
    return sse_event(
        end_event_body(
            answer=answer,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            detail=detail,
        ),
        event="end",
    )


def message_item(*, role: str, content: str, status: str) -> MessageItem:
    """One stored message as the page shows it (answers also as sanitised HTML)."""
    item: MessageItem = {"role": role, "content": content, "status": status}
    if role == "assistant":
        item["html"] = markdown_to_safe_html(content)
    return item
