"""/v1/chat/completions driven in-process with Channels' `HttpCommunicator`, where the test can
see the database queries the request makes and change timings.

`async_to_sync` runs the app on a fresh event loop while this thread serves the app's
thread-sensitive (database) calls, so `CaptureQueriesContext` on this thread's connection sees
every query the request path makes.
"""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator
from django.db import connection
from django.test.utils import CaptureQueriesContext

from aiflowy.llm import upstream_clients_close
from apikeys.selectors import principal_cache
from bots.selectors import bot_cache
from chat.recorder import history_writer
from config.asgi import application
from knowledge.quotes import links_cache
from tests.chat.conftest import COMPLETIONS, sse_json, user


async def call(api_key: str, body: dict) -> dict:
    communicator = HttpCommunicator(
        application,
        "POST",
        COMPLETIONS,
        body=json.dumps(body).encode(),
        headers=[(b"authorization", f"Bearer {api_key}".encode())],
    )
    response = await communicator.get_response(timeout=10)
    # Let the history writer finish here, so its queries stay out of the next measurement, and
    # close the upstream connections this short-lived event loop opened.
    await history_writer().flush()
    await upstream_clients_close()
    return response


def reads(captured: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].lstrip().upper().startswith("SELECT")
    ]


@pytest.fixture
def warm_caches(monkeypatch):
    """Production-like caching of keys, bots and their knowledge-base links (the test settings
    turn it off)."""
    monkeypatch.setattr(principal_cache, "ttl", 60.0)
    monkeypatch.setattr(bot_cache, "ttl", 60.0)
    monkeypatch.setattr(links_cache, "ttl", 60.0)
    principal_cache.invalidate()
    bot_cache.invalidate()
    links_cache.invalidate()
    yield
    principal_cache.invalidate()
    bot_cache.invalidate()
    links_cache.invalidate()


@pytest.mark.parametrize("stream", [False, True])
def test_a_stateless_call_reads_no_table_once_key_and_bot_are_cached(
    bot, api_key, warm_caches, stream
):
    body = {"model": "helper", "stream": stream, "messages": [user("hot path")]}
    with CaptureQueriesContext(connection) as cold:
        assert async_to_sync(call)(api_key, body)["status"] == 200
    # The first call loads the key and the bot: this proves the capture sees the request path.
    assert any("apikeys_apikey" in sql for sql in reads(cold))
    assert any("bots_bot" in sql for sql in reads(cold))
    with CaptureQueriesContext(connection) as warm:
        response = async_to_sync(call)(api_key, body)
    assert response["status"] == 200
    assert reads(warm) == []


def test_a_chat_id_call_reads_only_the_conversation_and_its_window(bot, api_key, warm_caches):
    body = {"model": "helper", "chatId": "hot", "messages": [user("first")]}
    async_to_sync(call)(api_key, body)
    with CaptureQueriesContext(connection) as captured:
        response = async_to_sync(call)(api_key, {**body, "messages": [user("second")]})
    assert response["status"] == 200
    # Before the answer: the conversation and its last messages. After it, the history writer
    # finds the conversation again to append to it.
    conversation_reads = [sql for sql in reads(captured) if "chat_" in sql]
    assert len(conversation_reads) == 3
    assert len(reads(captured)) == 3


@pytest.mark.asyncio
async def test_a_stream_waiting_for_its_first_token_is_kept_alive_then_ends_with_an_error(
    make_bot, api_key, settings
):
    """The upstream never answers (until the provider's 2 s timeout): the stream opens after
    the keep-alive interval, sends `: ping` comments, then an error event and [DONE]."""
    settings.AIFLOWY_SSE_PING_SECONDS = 0.2
    await database_sync_to_async(make_bot)(name="hanging", model="hang")
    response = await call(
        api_key, {"model": "hanging", "stream": True, "messages": [user("anyone?")]}
    )
    assert response["status"] == 200
    text = response["body"].decode()
    assert text.startswith(": ping\n\n")
    *_, error, done = sse_json(text)
    assert error["error"]["code"] == "upstream_timeout"
    assert done == "[DONE]"
