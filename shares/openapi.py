"""The share page's API in the OpenAPI document (see `aiflowy.openapi`): what a share link's
page calls, and what a site embedding a link may call itself. Every type below is the one
the endpoint validates with or answers from.

The bots' playground endpoints (`/api/chat-page/playground/…`) are not here: they answer
only an active staff member's admin session with an `X-Requested-With` header, for the
admin's own page; they are no API a client is offered (docs/openapi.md)."""

from __future__ import annotations

from aiflowy.openapi import Operation, return_type
from aiflowy.wire import share as share_wire
from shares.schemas import ShareAnswerRequest, ShareMessagesRequest, ShareOpenRequest

ERROR = return_type(share_wire.error_body)
TAG = "Share links"
ANSWER_EVENTS = {
    "chat": return_type(share_wire.chat_event_body),
    "delta": return_type(share_wire.delta_event_body),
    "end": return_type(share_wire.end_event_body),
    "error": ERROR,
}
IDENTITY = (
    "No API key: the link's `shareId` and the visitor, by `authToken` when the link "
    "authenticates its users (FastGPT's shareAuth hooks), else by the signed cookie "
    "`aiflowy_chat_visitor` that `open` sets. Messages are in the browser's language "
    "(`Accept-Language`)."
)

OPERATIONS = [
    Operation(
        method="post",
        paths=("/api/chat-page/share/open",),
        summary="Open a share link's chat page",
        tag=TAG,
        description="The bot's name and welcome, what the page shows, and the visitor's "
        "recent chats. " + IDENTITY,
        body=ShareOpenRequest,
        responses={200: return_type(share_wire.open_body)},
        error=ERROR,
        error_statuses=(400, 401, 403, 404, 429, 500, 503),
        authenticated=False,
    ),
    Operation(
        method="post",
        paths=("/api/chat-page/share/messages",),
        summary="One of the visitor's chats, to show again",
        tag=TAG,
        description=IDENTITY,
        body=ShareMessagesRequest,
        responses={200: return_type(share_wire.messages_body)},
        error=ERROR,
        error_statuses=(400, 401, 403, 404, 429, 500, 503),
        authenticated=False,
    ),
    Operation(
        method="post",
        paths=("/api/chat-page/share/answer",),
        summary="Ask a share link's bot; the answer streams",
        tag=TAG,
        description="Named server-sent events: `chat` (the chat's id), `delta`…, then "
        "always a final `end` (the answer as sanitised HTML, usage) or `error`. A refused "
        "question is an error answer before the stream starts. " + IDENTITY,
        body=ShareAnswerRequest,
        named_events=ANSWER_EVENTS,
        events_description="Server-sent events `chat`, `delta`…, then `end` or `error`.",
        error=ERROR,
        error_statuses=(400, 401, 403, 404, 429, 500, 502, 503, 504),
        authenticated=False,
    ),
]
