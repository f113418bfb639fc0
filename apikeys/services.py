"""Creating, hashing and switching API keys. The only place a full key ever exists."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apikeys.models import ApiKey

KEY_PREFIX = "af-"
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 6


def api_key_generate() -> str:
    """`af-` + 256 random bits in URL-safe base64 (43 characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@transaction.atomic
def api_key_create(
    *,
    name: str,
    created_by=None,
    expires_at: datetime | None = None,
    bot_ids: Iterable[int] = (),
    workflow_ids: Iterable[int] = (),
    knowledge_base_ids: Iterable[int] = (),
    rate_limit_per_minute: int = 0,
    default_bot_id: int | None = None,
    api_key: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with the full secret, which is not stored and never shown
    again. `api_key` may be an unsaved instance from the admin form, with its fields set.
    With `bot_ids` and no `default_bot_id`, the first of `bot_ids` is the default bot."""
    bot_ids = list(bot_ids)
    raw_key = api_key_generate()
    if api_key is None:
        api_key = ApiKey(
            name=name,
            expires_at=expires_at,
            rate_limit_per_minute=rate_limit_per_minute,
        )
    api_key.created_by = created_by
    if default_bot_id is not None:
        api_key.default_bot_id = default_bot_id
    elif api_key.default_bot_id is None and bot_ids:
        api_key.default_bot_id = bot_ids[0]
    api_key.prefix = raw_key[:DISPLAY_PREFIX_LENGTH]
    api_key.key_hash = api_key_hash(raw_key)
    api_key.full_clean()
    api_key.save()
    if bot_ids:
        api_key.allowed_bots.set(bot_ids)
    if workflow_ids:
        api_key.allowed_workflows.set(workflow_ids)
    if knowledge_base_ids:
        api_key.allowed_knowledge_bases.set(knowledge_base_ids)
    return api_key, raw_key


def api_key_default_bot_settle(*, api_key: ApiKey, picked_bot_ids: Iterable[int]) -> None:
    """Keep the default bot one of the allowed bots: when it is unset (or no longer allowed),
    the first bot the operator picked (in the order picked) becomes the default. A key allowed
    every bot keeps whatever default was chosen."""
    allowed = set(api_key.allowed_bots.values_list("id", flat=True))
    if not allowed or api_key.default_bot_id in allowed:
        return
    picked = [bot_id for bot_id in picked_bot_ids if bot_id in allowed]
    api_key.default_bot_id = picked[0] if picked else min(allowed)
    ApiKey.objects.filter(pk=api_key.pk).update(default_bot_id=api_key.default_bot_id)


def api_keys_set_enabled(*, api_keys: Iterable[ApiKey], enabled: bool) -> int:
    ids = [api_key.pk for api_key in api_keys]
    return ApiKey.objects.filter(pk__in=ids).update(enabled=enabled)


def api_key_mark_used(*, api_key_id: int) -> None:
    ApiKey.objects.filter(pk=api_key_id).update(last_used_at=timezone.now())
