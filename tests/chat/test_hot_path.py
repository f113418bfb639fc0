"""The hot path reads keys and bots from the per-process cache, not the database, and
revocation takes effect once the cache entry goes (within AIFLOWY_CONFIG_CACHE_SECONDS)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from channels.db import database_sync_to_async

from aiflowy.llm import upstream_clients_closed
from apikeys.models import ApiKey
from apikeys.selectors import principal_cache
from bots.selectors import bot_cache
from chat.models import Conversation, Message
from chat.recorder import ExchangeRecord, history_write
from config.asgi import application

URL = "/api/v1/aiBot/externalChat"


@pytest.fixture
def long_cache_ttl():
    saved = principal_cache.ttl, bot_cache.ttl
    principal_cache.ttl = bot_cache.ttl = 60.0
    principal_cache.invalidate()
    bot_cache.invalidate()
    yield
    principal_cache.ttl, bot_cache.ttl = saved
    principal_cache.invalidate()
    bot_cache.invalidate()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_cached_key_is_served_without_the_database_until_the_entry_goes(
    long_cache_ttl, bot, api_key
):
    body = {"botId": bot.id, "messages": [{"role": "user", "content": "hi"}]}
    transport = httpx.ASGITransport(app=application)
    async with (
        upstream_clients_closed(),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        first = await client.post(URL, headers={"Authorization": api_key}, json=body)
        assert first.status_code == 200

        # The row goes away; the cached principal still answers (no database read per call).
        await database_sync_to_async(ApiKey.objects.all().delete)()
        cached = await client.post(URL, headers={"Authorization": api_key}, json=body)
        assert cached.status_code == 200

        # Once the entry expires (here: is dropped), the revocation is seen.
        principal_cache.invalidate()
        revoked = await client.post(URL, headers={"Authorization": api_key}, json=body)
        assert revoked.status_code == 401


def _batch(bot, size: int) -> list[ExchangeRecord]:
    now = datetime.now(UTC)
    return [
        ExchangeRecord(
            bot_id=bot.id,
            api_key_id=None,
            source="externalChat",
            question=f"q{i}",
            answer=f"a{i}",
            status="complete",
            started_at=now,
            finished_at=now,
        )
        for i in range(size)
    ]


def test_history_for_stateless_calls_costs_the_same_queries_for_2_or_40_calls(db, bot):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        history_write(_batch(bot, 2))
    with CaptureQueriesContext(connection) as large:
        history_write(_batch(bot, 40))
    assert len(large.captured_queries) == len(small.captured_queries)
    assert Conversation.objects.count() == 42
    assert Message.objects.count() == 84
