"""Reading API keys on the hot path: a cached, immutable view of one key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from aiflowy.localcache import TtlCache
from apikeys.models import ApiKey
from apikeys.services import api_key_hash


@dataclass(frozen=True, slots=True)
class ApiKeyPrincipal:
    """What a request may do, as read from the key. `None` scopes mean "everything"."""

    id: int
    name: str
    prefix: str
    enabled: bool
    expires_at: datetime | None
    bot_ids: frozenset[int] | None
    workflow_ids: frozenset[int] | None
    rate_limit_per_minute: int
    default_bot_id: int | None = None
    knowledge_base_ids: frozenset[int] | None = None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    def may_use_bot(self, bot_id: int) -> bool:
        return self.bot_ids is None or bot_id in self.bot_ids

    def may_use_workflow(self, workflow_id: int) -> bool:
        return self.workflow_ids is None or workflow_id in self.workflow_ids

    def may_use_knowledge_base(self, knowledge_base_id: int) -> bool:
        """A key scoped to knowledge bases uses those; a key without any scope (FastGPT's
        "global" key) uses all; a key limited to bots or workflows only uses none."""
        if self.knowledge_base_ids is not None:
            return knowledge_base_id in self.knowledge_base_ids
        return self.bot_ids is None and self.workflow_ids is None


principal_cache: TtlCache[ApiKeyPrincipal | None] = TtlCache(
    ttl=settings.AIFLOWY_CONFIG_CACHE_SECONDS
)


def api_key_principal_load(key_hash: str) -> ApiKeyPrincipal | None:
    api_key = ApiKey.objects.filter(key_hash=key_hash).first()
    if api_key is None:
        return None
    bot_ids = frozenset(api_key.allowed_bots.values_list("id", flat=True))
    workflow_ids = frozenset(api_key.allowed_workflows.values_list("id", flat=True))
    # Read from the link table itself: no reverse lookup through KnowledgeBase's relations.
    knowledge_base_ids = frozenset(
        ApiKey.allowed_knowledge_bases.through.objects.filter(apikey_id=api_key.pk).values_list(
            "knowledgebase_id", flat=True
        )
    )
    return ApiKeyPrincipal(
        id=api_key.pk,
        name=api_key.name,
        prefix=api_key.prefix,
        enabled=api_key.enabled,
        expires_at=api_key.expires_at,
        bot_ids=bot_ids or None,
        workflow_ids=workflow_ids or None,
        rate_limit_per_minute=api_key.rate_limit_per_minute,
        default_bot_id=api_key.default_bot_id,
        knowledge_base_ids=knowledge_base_ids or None,
    )


async def api_key_principal_get(raw_key: str) -> ApiKeyPrincipal | None:
    """The key's principal, or None for an unknown key (cached too, so guessing is cheap)."""
    key_hash = api_key_hash(raw_key)
    return await principal_cache.get_or_load(
        key_hash, lambda: database_sync_to_async(api_key_principal_load)(key_hash)
    )
