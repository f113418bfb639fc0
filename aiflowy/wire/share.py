"""The chat page's own API (share links and the admin playground).

JSON answers are plain objects; errors are `{"code", "message"}` with the HTTP status, the
message written for the person in front of the page (the page shows it as text). An answer
streams as named SSE events:
- `chat` `{"chatId"}`: the chat the answer belongs to (new chats get their id here),
- `delta` `{"text"}`: the next piece of the answer,
- `end` `{"html", "usage", ["detail"]}`: the whole answer rendered as sanitised HTML,
- `error` `{"code", "message"}`: the answer failed; like `end`, it is the final event.
"""

from __future__ import annotations

from typing import Any

from aiflowy.errors import ApiError
from aiflowy.markdown import markdown_to_safe_html
from aiflowy.sse import sse_event


def error_body(error: ApiError) -> dict[str, Any]:
    return {"code": error.code, "message": error.message}


def sse_error(error: ApiError) -> bytes:
    return sse_event(error_body(error), event="error")


def chat_event(chat_id: str) -> bytes:
    return sse_event({"chatId": chat_id}, event="chat")


def delta_event(text: str) -> bytes:
    return sse_event({"text": text}, event="delta")


def end_event(
    *, answer: str, prompt_tokens: int, completion_tokens: int, detail: dict | None
) -> bytes:
    body: dict[str, Any] = {
        "html": markdown_to_safe_html(answer),
        "usage": {
            "promptTokens": prompt_tokens,
            "completionTokens": completion_tokens,
            "totalTokens": prompt_tokens + completion_tokens,
        },
    }
    if detail is not None:
        body["detail"] = detail
    return sse_event(body, event="end")


def message_item(*, role: str, content: str, status: str) -> dict[str, Any]:
    """One stored message as the page shows it (answers also as sanitised HTML)."""
    item: dict[str, Any] = {"role": role, "content": content, "status": status}
    if role == "assistant":
        item["html"] = markdown_to_safe_html(content)
    return item
