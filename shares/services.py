"""The chat page's flows, for share links and for the admin playground.

A page is a `ChatPage`: which bot, whose chats (`ChatSpace`), and what the page may show.
`share_page_open` / `share_page_for_question` build one for a share link (link checks,
shareAuth hooks, limits); `playground_page` for a staff member. Then `chat_turn_prepare`
opens or continues one of the space's chats, and `page_answer_stream` answers through the
same bot reply path as the API endpoints (`chat.services.bot_reply_stream`), so a page's
answer is recorded like any other, and afterwards counts the link's usage and sends
`shareAuth/finish`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _
from pydantic_core import PydanticCustomError

from aiflowy.errors import ApiError, BadRequest, Forbidden, NotFound, RateLimited
from aiflowy.llm import StreamEnd
from aiflowy.ratelimit import rate_limit_hit
from aiflowy.validation import text_checked
from aiflowy.wire import fastgpt
from bots.selectors import BotConfig, bot_config_get
from chat.models import Conversation
from chat.services import (
    ChatTurn,
    bot_reply_stream,
    chat_module_runs,
    chat_turn_load_history,
    prompt_messages,
)
from shares.hooks import send_finish_hook, share_auth_init, share_auth_start
from shares.models import ShareConversation, ShareLink
from shares.selectors import ChatSpace, ShareLinkConfig, share_link_get, space_chat_exists


class VisitorUnknown(ApiError):
    status = 401
    code = "visitor_unknown"


class BudgetExhausted(ApiError):
    status = 429
    code = "token_budget_exhausted"


@dataclass(frozen=True, slots=True)
class ChatPage:
    """Who chats with which bot through which page, and what the page may show."""

    bot: BotConfig
    space: ChatSpace
    show_detail: bool
    show_quotes: bool
    share_link: ShareLinkConfig | None = None
    auth_token: str = ""


@dataclass(frozen=True, slots=True)
class ChatStarted:
    """The first item of an answer: the chat it belongs to (new chats get their id here)."""

    chat_id: str


@dataclass(frozen=True, slots=True)
class AnswerFinished:
    """The last item of an answer."""

    answer: str
    prompt_tokens: int
    completion_tokens: int
    detail: dict | None


def _user_key(*, uid: str, auth_token: str, visitor_id: str) -> str:
    """The auth server's uid, else the authToken, else the anonymous visitor cookie's id;
    prefixed, so that no token can pose as another kind of identity. An authToken may be a
    credential of the operator's own system: only its HMAC (keyed by SECRET_KEY) is stored
    and shown."""
    if uid:
        return f"uid:{uid}"
    if auth_token:
        return f"token:{salted_hmac('shares.auth_token', auth_token).hexdigest()[:32]}"
    if visitor_id:
        return f"visitor:{visitor_id}"
    raise VisitorUnknown(
        _(
            "This browser did not send the chat page's cookie; open the share link again "
            "(with cookies allowed)."
        )
    )


async def _share_link_usable(share_id: str) -> tuple[ShareLinkConfig, BotConfig]:
    link = await share_link_get(share_id) if share_id else None
    if link is None:
        raise NotFound(_("This share link does not exist."), code="share_link_not_found")
    if not link.enabled:
        raise Forbidden(_("This share link has been disabled."), code="share_link_disabled")
    if link.expired:
        raise Forbidden(_("This share link has expired."), code="share_link_expired")
    bot = await bot_config_get(link.bot_id)
    if bot is None or not bot.enabled:
        raise Forbidden(_("This chat is not available at the moment."), code="bot_disabled")
    return link, bot


def _share_page(link: ShareLinkConfig, bot: BotConfig, *, user_key: str, token: str) -> ChatPage:
    return ChatPage(
        bot=bot,
        space=ChatSpace(
            bot_id=bot.id,
            source=Conversation.Source.SHARE,
            user_key=user_key,
            share_link_id=link.id,
        ),
        show_detail=link.show_detail,
        show_quotes=link.show_quotes,
        share_link=link,
        auth_token=token,
    )


async def share_page_open(*, share_id: str, auth_token: str, visitor_id: str) -> ChatPage:
    """The page of a usable link for this visitor; with an auth server, `shareAuth/init`
    decides (and may name the user)."""
    link, bot = await _share_link_usable(share_id)
    uid = await share_auth_init(link, token=auth_token) if link.auth_host else ""
    user_key = _user_key(uid=uid, auth_token=auth_token, visitor_id=visitor_id)
    return _share_page(link, bot, user_key=user_key, token=auth_token)


async def _limit(subject: str, per_minute: int, message: str) -> None:
    try:
        await rate_limit_hit(subject, per_minute)
    except RateLimited as exc:
        raise RateLimited(
            _("%(reason)s Please wait %(seconds)d s.")
            % {"reason": message, "seconds": exc.retry_after},
            retry_after=exc.retry_after,
        ) from None


async def share_page_for_question(
    *, share_id: str, auth_token: str, visitor_id: str, question: str
) -> ChatPage:
    """The page for one question, once every check passed: the link is usable and within
    its budget and its link-wide rate, `shareAuth/start` said yes, and the user is within
    their own rate."""
    link, bot = await _share_link_usable(share_id)
    if link.budget_exhausted:
        raise BudgetExhausted(_("This chat has used up its budget; please come back later."))
    await _limit(
        f"share:{link.id}",
        link.questions_per_minute,
        _("This chat is receiving too many questions right now."),
    )
    uid = ""
    if link.auth_host:
        uid = await share_auth_start(link, token=auth_token, question=question)
    user_key = _user_key(uid=uid, auth_token=auth_token, visitor_id=visitor_id)
    await _limit(
        f"share:{link.id}:{user_key}",
        link.questions_per_minute_per_user,
        _("You may ask %(count)d questions per minute.")
        % {"count": link.questions_per_minute_per_user},
    )
    return _share_page(link, bot, user_key=user_key, token=auth_token)


async def playground_page(*, staff_user_id: int, bot_id: int) -> ChatPage:
    """A staff member's playground with a bot (disabled bots too: operators try them
    before enabling them). Everything is shown."""
    bot = await bot_config_get(bot_id)
    if bot is None:
        raise NotFound(_("No bot with this id."), code="bot_not_found")
    return ChatPage(
        bot=bot,
        space=ChatSpace(
            bot_id=bot.id,
            source=Conversation.Source.PLAYGROUND,
            user_key=f"staff:{staff_user_id}",
        ),
        show_detail=True,
        show_quotes=True,
    )


def _chat_create(page: ChatPage, *, chat_id: str, title: str) -> None:
    """The conversation row of a new chat, before its first answer (the history writer then
    joins it by chat id), tied to its share link."""
    now = timezone.now()
    with transaction.atomic():
        conversation = Conversation.objects.create(
            bot_id=page.bot.id,
            api_key=None,
            external_chat_id=chat_id,
            custom_uid=page.space.user_key,
            source=page.space.source,
            title=title[:200],
            created_at=now,
            updated_at=now,
        )
        if page.share_link is not None:
            ShareConversation.objects.create(
                share_link_id=page.share_link.id,
                conversation=conversation,
                user_key=page.space.user_key,
                created_at=now,
            )


async def chat_turn_prepare(page: ChatPage, *, chat_id: str, question: str) -> ChatTurn:
    """The turn answering `question` in the space's chat `chat_id` (its stored history as
    context), or in a new chat when `chat_id` is empty. A chat id of another user, link or
    bot is unknown here."""
    if chat_id:
        if not await database_sync_to_async(space_chat_exists)(page.space, chat_id):
            raise NotFound(_("This chat does not exist (or is not yours)."), code="chat_not_found")
    else:
        chat_id = f"{page.space.source}-{secrets.token_urlsafe(16)}"
        await database_sync_to_async(_chat_create)(page, chat_id=chat_id, title=question)
    turn = ChatTurn(
        bot=page.bot,
        api_key=None,
        source=page.space.source,
        messages=[{"role": "user", "content": question}],
        external_chat_id=chat_id,
        custom_uid=page.space.user_key,
    )
    await chat_turn_load_history(turn)
    return turn


def _usage_add(link_id: int, tokens: int) -> None:
    ShareLink.objects.filter(pk=link_id).update(
        questions_count=F("questions_count") + 1,
        tokens_used=F("tokens_used") + tokens,
        last_used_at=timezone.now(),
    )


def _detail(
    page: ChatPage, turn: ChatTurn, end: StreamEnd, response_data: list[dict], timings: dict
) -> dict | None:
    """What the page shows under an answer: FastGPT's responseData, and in the playground
    also the prompt the model received and the timings."""
    if not page.show_detail and not page.show_quotes:
        return None
    detail: dict = {}
    if page.show_quotes:
        detail["quotes"] = [q for module in response_data for q in module.get("quoteList", [])]
    if page.show_detail:
        detail["responseData"] = response_data
        detail["model"] = end.model or turn.bot.model
        detail["timings"] = timings
        if page.share_link is None:
            detail["prompt"] = prompt_messages(turn)
    return detail


async def page_answer_stream(
    page: ChatPage, turn: ChatTurn
) -> AsyncIterator[ChatStarted | str | AnswerFinished]:
    """`ChatStarted`, the answer's text deltas, then `AnswerFinished` (the exchange is
    stored and the link's usage counted by then). `shareAuth/finish` with the answer's
    responseData goes in the background."""
    yield ChatStarted(chat_id=turn.external_chat_id)
    replies = bot_reply_stream(turn)
    parts: list[str] = []
    first_token_ms: int | None = None
    end: StreamEnd | None = None
    try:
        async for item in replies:
            if isinstance(item, StreamEnd):
                end = item
                break
            if first_token_ms is None:
                first_token_ms = int((time.monotonic() - turn.started_monotonic) * 1000)
            parts.append(item)
            try:
                yield item
            except Exception as exc:
                # A failure while sending (thrown in by the consumer): the reply records it,
                # once, as an error, and raises the `ApiError` to show.
                await replies.athrow(exc)
                raise
    finally:
        await replies.aclose()
    if end is None:  # bot_reply_stream always ends with a StreamEnd or raises
        return
    answer = "".join(parts)
    modules = chat_module_runs(turn, end)
    response_data = [
        {**record, "answer": answer, "quoteList": []} for record in fastgpt.response_data(modules)
    ]
    link = page.share_link
    if link is not None:
        # Counted before the final event (one UPDATE): the next question already sees the
        # budget spent, and no write outlives the answer.
        await database_sync_to_async(_usage_add)(link.id, end.prompt_tokens + end.completion_tokens)
        if link.auth_host:
            await send_finish_hook(link, token=page.auth_token, response_data=response_data)
    timings = {
        "firstTokenMs": first_token_ms,
        "totalMs": int((time.monotonic() - turn.started_monotonic) * 1000),
    }
    yield AnswerFinished(
        answer=answer,
        prompt_tokens=end.prompt_tokens,
        completion_tokens=end.completion_tokens,
        detail=_detail(page, turn, end, response_data, timings),
    )


def question_checked(question: object) -> str:
    """The question as the model may receive it, or a 400 that says what is wrong."""
    if not isinstance(question, str) or not question.strip():
        raise BadRequest(_("Type a question first."), code="question_missing", param="question")
    limit = settings.AIFLOWY_SHARE_MAX_QUESTION_CHARS
    if len(question) > limit:
        raise BadRequest(
            _("This question is too long (%(length)d characters; at most %(limit)d).")
            % {"length": len(question), "limit": limit},
            code="question_too_long",
            param="question",
        )
    try:
        return text_checked(question)
    except PydanticCustomError:
        raise BadRequest(
            _("This question contains characters that cannot be stored (NUL or invalid Unicode)."),
            code="question_invalid",
            param="question",
        ) from None
