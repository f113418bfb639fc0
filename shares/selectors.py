"""Reading share links (cached per process, like keys and bots) and a chat page's history.

A link's configuration is read on every page request. It is cached for
`AIFLOWY_CONFIG_CACHE_SECONDS` per process, so disabling a link, moving its expiry or raising
its budget reaches every process within that time without a query per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from aiflowy.localcache import TtlCache
from aiflowy.wire.share import ChatListItem
from chat.models import Conversation, Message
from shares.models import ShareLink

# How many earlier chats the page lists.
CHATS_LISTED = 50


@dataclass(frozen=True, slots=True)
class ShareLinkConfig:
    id: int
    share_id: str
    name: str
    bot_id: int
    enabled: bool
    expires_at: datetime | None
    auth_host: str
    auth_allow_private_host: bool
    questions_per_minute_per_user: int
    questions_per_minute: int
    token_budget: int
    tokens_used: int
    show_quotes: bool
    show_detail: bool

    @classmethod
    def from_model(cls, link: ShareLink) -> ShareLinkConfig:
        return cls(
            id=link.pk,
            share_id=link.share_id,
            name=link.name,
            bot_id=link.bot_id,
            enabled=link.enabled,
            expires_at=link.expires_at,
            auth_host=link.auth_host,
            auth_allow_private_host=link.auth_allow_private_host,
            questions_per_minute_per_user=link.questions_per_minute_per_user,
            questions_per_minute=link.questions_per_minute,
            token_budget=link.token_budget,
            tokens_used=link.tokens_used,
            show_quotes=link.show_quotes,
            show_detail=link.show_detail,
        )

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def budget_exhausted(self) -> bool:
        return self.token_budget > 0 and self.tokens_used >= self.token_budget


share_link_cache: TtlCache[ShareLinkConfig | None] = TtlCache(
    ttl=settings.AIFLOWY_CONFIG_CACHE_SECONDS
)


def _share_link_load(share_id: str) -> ShareLinkConfig | None:
    link = ShareLink.objects.filter(share_id=share_id).first()
    return ShareLinkConfig.from_model(link) if link is not None else None


async def share_link_get(share_id: str) -> ShareLinkConfig | None:
    return await share_link_cache.get_or_load(
        share_id, lambda: database_sync_to_async(_share_link_load)(share_id)
    )


@dataclass(frozen=True, slots=True)
class ChatSpace:
    """Whose chats with which bot a page shows: one user of one share link, or one staff
    member in the playground. Every history read and every continued chat is scoped by it, so
    two users (or two links) never see each other's chats."""

    bot_id: int
    source: str
    user_key: str
    share_link_id: int | None = None

    def conversations(self) -> QuerySet[Conversation]:
        conversations = Conversation.objects.filter(
            bot_id=self.bot_id,
            api_key__isnull=True,
            source=self.source,
            custom_uid=self.user_key,
        ).exclude(external_chat_id="")
        if self.share_link_id is not None:
            conversations = conversations.filter(share__share_link_id=self.share_link_id)
        return conversations


def space_chats_list(space: ChatSpace) -> list[ChatListItem]:
    """The space's most recent chats, newest first."""
    rows = space.conversations().order_by("-updated_at", "-id")[:CHATS_LISTED]
    return [
        {
            "chatId": conversation.external_chat_id,
            "title": conversation.title,
            "updatedAt": conversation.updated_at.isoformat(),
        }
        for conversation in rows.only("external_chat_id", "title", "updated_at")
    ]


def space_chat_exists(space: ChatSpace, chat_id: str) -> bool:
    return space.conversations().filter(external_chat_id=chat_id).exists()


def space_chat_messages(space: ChatSpace, chat_id: str) -> list[Message] | None:
    """The chat's messages in order, or None when the space has no such chat."""
    conversation = space.conversations().filter(external_chat_id=chat_id).only("id").first()
    if conversation is None:
        return None
    messages = Message.objects.filter(conversation_id=conversation.pk)
    return list(messages.order_by("created_at", "id"))
