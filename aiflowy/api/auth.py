"""Authentication of external calls by API key, shared by every external endpoint."""

from __future__ import annotations

import time

from channels.db import database_sync_to_async

from aiflowy.api.errors import Unauthorized
from aiflowy.api.ratelimit import rate_limit_hit
from aiflowy.background import spawn
from apikeys.selectors import ApiKeyPrincipal, api_key_principal_get
from apikeys.services import api_key_mark_used

# `last_used_at` is written at most once a minute per key and process: a write per request
# would put the database on the hot path.
LAST_USED_WRITE_INTERVAL = 60.0
_last_used_written: dict[int, float] = {}


def key_from_authorization(value: str | None) -> str | None:
    """Accept `Authorization: <key>` (AIFlowy) and `Authorization: Bearer <key>` (OpenAI)."""
    if not value:
        return None
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    if rest and scheme.lower() == "bearer":
        value = rest.strip()
    return value or None


async def authenticate(
    authorization: str | None, *, query_key: str | None = None
) -> ApiKeyPrincipal:
    """The caller's key principal, after the rate limit; 401 / 429 otherwise."""
    raw_key = key_from_authorization(authorization) or query_key
    if raw_key is None:
        raise Unauthorized(
            "Missing API key: send the header 'Authorization: Bearer <key>'.",
            code="missing_api_key",
        )
    principal = await api_key_principal_get(raw_key)
    if principal is None:
        raise Unauthorized("Invalid API key.")
    if not principal.enabled:
        raise Unauthorized("This API key is disabled.", code="api_key_disabled")
    if principal.is_expired:
        raise Unauthorized("This API key has expired.", code="api_key_expired")
    await rate_limit_hit(principal.id, principal.rate_limit_per_minute)
    _note_used(principal.id)
    return principal


def _note_used(api_key_id: int) -> None:
    now = time.monotonic()
    if (
        now - _last_used_written.get(api_key_id, -LAST_USED_WRITE_INTERVAL)
        < LAST_USED_WRITE_INTERVAL
    ):
        return
    _last_used_written[api_key_id] = now
    spawn(database_sync_to_async(api_key_mark_used)(api_key_id=api_key_id), name="key-last-used")
