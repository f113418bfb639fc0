"""The chat page's JSON and stream endpoints, served ahead of Django like the other external
endpoints (no middleware thread hops on the answer path).

Share endpoints take `shareId` and the visitor's identity (`authToken`, else the signed
visitor cookie the page set), never an API key. Playground endpoints take the admin's session
cookie of an active staff member, and a `X-Requested-With` header: a page on another site
cannot send that header without a CORS preflight, which is never granted, so it cannot make
a staff member's browser ask questions (the session cookie is also SameSite=Lax).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import import_module

from channels.auth import get_user
from channels.db import database_sync_to_async
from django.conf import settings
from django.core import signing
from django.http.cookie import parse_cookie
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation.trans_real import parse_accept_lang_header

from aiflowy.consumers import ApiConsumer
from aiflowy.errors import BadRequest, Forbidden, NotFound, Unauthorized
from aiflowy.validation import json_object, validated
from aiflowy.wire import share as share_wire
from shares.schemas import ShareAnswerRequest, ShareMessagesRequest, ShareOpenRequest
from shares.selectors import space_chat_messages, space_chats_list
from shares.services import (
    AnswerFinished,
    ChatPage,
    ChatStarted,
    chat_turn_prepare,
    page_answer_stream,
    playground_page,
    question_checked,
    share_page_for_question,
    share_page_open,
)

VISITOR_COOKIE = "aiflowy_chat_visitor"
VISITOR_SALT = "shares.visitor"
PLAYGROUND_HEADER = b"x-requested-with"


def visitor_id_from_cookie(value: str | None) -> str:
    """The anonymous visitor's id from the page's signed cookie ("" when absent or forged)."""
    if not value:
        return ""
    try:
        return signing.loads(value, salt=VISITOR_SALT)
    except signing.BadSignature:
        return ""


def _text(data: dict, name: str, *, max_chars: int, required: bool = False) -> str:
    value = data.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a string.", param=name)
    if len(value) > max_chars:
        raise BadRequest(f"'{name}' is longer than {max_chars} characters.", param=name)
    if required and not value:
        raise BadRequest(f"'{name}' is required.", param=name)
    return value


class ChatPageConsumer(ApiConsumer):
    """A chat page endpoint: `page()` says whose page it is, `handle_page` answers."""

    wire = share_wire

    def cookie(self, name: str) -> str | None:
        header = self.header(b"cookie")
        return parse_cookie(header).get(name) if header else None

    async def handle_request(self, body: bytes) -> None:
        with translation.override(self.language()):
            await self.handle_page(json_object(body))

    def language(self) -> str:
        """The browser's language (as the page itself was rendered in), for the messages the
        page shows; these endpoints run without Django's LocaleMiddleware."""
        for code, _quality in parse_accept_lang_header(self.header(b"accept-language") or ""):
            if code == "*":
                break
            try:
                return translation.get_supported_language_variant(code)
            except LookupError:
                continue
        return settings.LANGUAGE_CODE

    async def page(self, data: dict, *, question: str | None = None) -> ChatPage:
        raise NotImplementedError

    async def handle_page(self, data: dict) -> None:
        raise NotImplementedError


class ShareAccess:
    """A share link's page: `shareId`, and the visitor (`authToken`, else the cookie)."""

    share_request: type[ShareOpenRequest] = ShareOpenRequest

    async def page(self, data: dict, *, question: str | None = None) -> ChatPage:
        request = validated(self.share_request, data)
        share_id, auth_token = request.share_id, request.auth_token
        visitor_id = visitor_id_from_cookie(self.cookie(VISITOR_COOKIE))
        if question is None:
            return await share_page_open(
                share_id=share_id, auth_token=auth_token, visitor_id=visitor_id
            )
        return await share_page_for_question(
            share_id=share_id, auth_token=auth_token, visitor_id=visitor_id, question=question
        )


class PlaygroundAccess:
    """A bot's playground: an active staff member's admin session, and `botId`."""

    async def page(self, data: dict, *, question: str | None = None) -> ChatPage:
        if not self.header(PLAYGROUND_HEADER):
            raise Forbidden(_("The playground is used from its admin page."))
        session_key = self.cookie(settings.SESSION_COOKIE_NAME)
        user = None
        if session_key:
            engine = import_module(settings.SESSION_ENGINE)
            user = await get_user({"session": engine.SessionStore(session_key)})
        if user is None or not user.is_authenticated:
            raise Unauthorized(_("Sign in to the admin first."), code="not_signed_in")
        if not (user.is_active and user.is_staff):
            raise Forbidden(_("The playground is for staff members."))
        bot_id = data.get("botId")
        if isinstance(bot_id, str) and bot_id.isdigit() and len(bot_id) < 19:
            bot_id = int(bot_id)
        if not isinstance(bot_id, int) or isinstance(bot_id, bool) or not 0 < bot_id < 2**63:
            raise BadRequest("'botId' must be a bot's id.", param="botId")
        return await playground_page(staff_user_id=user.pk, bot_id=bot_id)


class OpenMixin:
    """The page opens: its bot, what it shows, and the user's earlier chats."""

    async def handle_page(self, data: dict) -> None:
        page = await self.page(data)
        chats = await database_sync_to_async(space_chats_list)(page.space)
        await self.send_json(
            share_wire.open_body(
                bot_name=page.bot.name,
                welcome=page.bot.welcome_message,
                show_detail=page.show_detail,
                show_quotes=page.show_quotes,
                chats=chats,
            )
        )


class MessagesMixin:
    """One of the user's earlier chats, to show again."""

    async def handle_page(self, data: dict) -> None:
        page = await self.page(data)
        chat_id = _text(data, "chatId", max_chars=250, required=True)
        messages = await database_sync_to_async(space_chat_messages)(page.space, chat_id)
        if messages is None:
            raise NotFound(_("This chat does not exist (or is not yours)."), code="chat_not_found")
        await self.send_json(
            share_wire.messages_body(
                chat_id=chat_id,
                messages=[
                    share_wire.message_item(
                        role=message.role, content=message.content, status=message.status
                    )
                    for message in messages
                ],
            )
        )


class AnswerMixin:
    """One question, answered as an event stream (`aiflowy.wire.share`)."""

    async def handle_page(self, data: dict) -> None:
        question = question_checked(data.get("question"))
        chat_id = _text(data, "chatId", max_chars=250)
        page = await self.page(data, question=question)
        turn = await chat_turn_prepare(page, chat_id=chat_id, question=question)
        source = page_answer_stream(page, turn)
        await self.send_sse_stream(_frames(source), source=source)


async def _frames(
    items: AsyncIterator[ChatStarted | str | AnswerFinished],
) -> AsyncIterator[bytes]:
    async for item in items:
        if isinstance(item, ChatStarted):
            yield share_wire.chat_event(item.chat_id)
        elif isinstance(item, AnswerFinished):
            yield share_wire.end_event(
                answer=item.answer,
                prompt_tokens=item.prompt_tokens,
                completion_tokens=item.completion_tokens,
                detail=item.detail,
            )
        else:
            yield share_wire.delta_event(item)


class ShareOpenConsumer(OpenMixin, ShareAccess, ChatPageConsumer):
    share_request = ShareOpenRequest


class ShareMessagesConsumer(MessagesMixin, ShareAccess, ChatPageConsumer):
    share_request = ShareMessagesRequest


class ShareAnswerConsumer(AnswerMixin, ShareAccess, ChatPageConsumer):
    share_request = ShareAnswerRequest


class PlaygroundOpenConsumer(OpenMixin, PlaygroundAccess, ChatPageConsumer):
    pass


class PlaygroundMessagesConsumer(MessagesMixin, PlaygroundAccess, ChatPageConsumer):
    pass


class PlaygroundAnswerConsumer(AnswerMixin, PlaygroundAccess, ChatPageConsumer):
    pass
