"""Database queries of the hot paths, checked against the baselines in `query_counts.json`.

What is counted: every SQL statement sent through Django's cursors (`CursorWrapper.execute` /
`executemany`, patched at class level), in any thread of this process, while one request is
served in-process (`httpx.ASGITransport` on `config.asgi.application`) and the history it
causes is written: the batch writers are flushed before the count ends, and `chatId` answers
are written before they are answered anyway. Transaction control (`BEGIN`, `SAVEPOINT`,
`RELEASE`…) is left out, so a count means the same on SQLite (whose `BEGIN IMMEDIATE` goes
through a cursor) and PostgreSQL (whose does not).

Why not `CaptureQueriesContext`: it watches one thread's connection, and the consumers reach
the database through `database_sync_to_async`, whose thread (and connection) is not the test's
when the test's event loop calls it. `test_the_counter_sees_the_queries_of_the_async_adapters`
shows it: the counter sees the key and bot loads on another thread, the capture sees none.

Each path is measured twice after a warm-up (which also has the key's `last_used_at` written,
done at most once a minute per key and process, so it is in neither count; that it is written
at all is `test_the_first_call_of_a_key_marks_it_used`):
- `<path>`: the caches of keys, bots and workflows warm, as in production between refreshes
  (`AIFLOWY_CONFIG_CACHE_SECONDS`);
- `<path>, caches cold`: every key, bot and workflow read from the database (as the test
  settings do on every request, and production every few seconds).

A count above its baseline fails. A count below it warns; record the new baselines with
`AIFLOWY_UPDATE_QUERY_COUNTS=1 .venv/bin/python -m pytest tests/contract/test_query_counts.py`
(which rewrites `query_counts.json` from the counts measured) and commit the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.test.utils import CaptureQueriesContext

from aiflowy.llm import upstream_clients_closed
from apikeys.models import ApiKey
from apikeys.selectors import principal_cache
from bots.selectors import bot_cache
from chat.recorder import history_writer
from config.asgi import application
from tests.contract.conftest import APPS, echo_definition, user
from workflows.recorder import run_writer
from workflows.selectors import workflow_cache

pytestmark = pytest.mark.django_db(transaction=True, available_apps=APPS)

BASELINES_FILE = Path(__file__).with_name("query_counts.json")
UPDATE = os.environ.get("AIFLOWY_UPDATE_QUERY_COUNTS") == "1"
CACHES = (principal_cache, bot_cache, workflow_cache)
# SQLite's `BEGIN IMMEDIATE` goes through a cursor, PostgreSQL's BEGIN does not.
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


# --- the counter ---------------------------------------------------------------------------------
@dataclass
class QueryLog:
    """The statements run while counting: (thread name, SQL)."""

    queries: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sql: str) -> None:
        with self.lock:
            self.queries.append((threading.current_thread().name, sql))

    @property
    def statements(self) -> list[str]:
        return [
            sql
            for _thread, sql in self.queries
            if not sql.lstrip().upper().startswith(TRANSACTION_CONTROL)
        ]

    @property
    def count(self) -> int:
        return len(self.statements)


@contextlib.contextmanager
def counting_queries() -> Iterator[QueryLog]:
    """Every statement through Django's cursors, in every thread, until the block ends."""
    log = QueryLog()
    execute, executemany = CursorWrapper.execute, CursorWrapper.executemany

    def counted_execute(self, sql, params=None):
        log.add(sql)
        return execute(self, sql, params)

    def counted_executemany(self, sql, param_list):
        log.add(sql)
        return executemany(self, sql, param_list)

    CursorWrapper.execute = counted_execute
    CursorWrapper.executemany = counted_executemany
    try:
        yield log
    finally:
        CursorWrapper.execute, CursorWrapper.executemany = execute, executemany


# --- the paths -----------------------------------------------------------------------------------
@dataclass
class World:
    key: str
    bot_id: int
    bot_name: str
    workflow_id: int
    calls: int = 0


Call = Callable[[httpx.AsyncClient, World], Awaitable[httpx.Response]]


async def external_chat(client: httpx.AsyncClient, world: World, *, stream: bool = False):
    return await client.post(
        "/api/v1/aiBot/externalChat",
        headers={"Authorization": world.key},
        json={"botId": world.bot_id, "stream": stream, "messages": [user("count me")]},
    )


async def external_chat_stream(client: httpx.AsyncClient, world: World):
    return await external_chat(client, world, stream=True)


async def completion(client: httpx.AsyncClient, world: World, **extra):
    return await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {world.key}"},
        json={"model": world.bot_name, "messages": [user("count me")], **extra},
    )


async def completion_first_turn(client: httpx.AsyncClient, world: World):
    """A new `chatId` on every call."""
    return await completion(client, world, chatId=f"first-{world.calls}")


async def completion_follow_up(client: httpx.AsyncClient, world: World):
    """The same `chatId` on every call: after the warm-up, each call is a follow-up."""
    return await completion(client, world, chatId="follow-up")


async def models(client: httpx.AsyncClient, world: World):
    return await client.get("/v1/models", headers={"Authorization": f"Bearer {world.key}"})


async def workflow_run(client: httpx.AsyncClient, world: World):
    return await client.post(
        "/api/v1/workflow/external/run",
        headers={"Authorization": world.key},
        json={"id": world.workflow_id, "variables": {"text": "count me"}},
    )


async def history_list(client: httpx.AsyncClient, world: World):
    return await client.get(
        "/api/v1/chat/histories",
        headers={"Authorization": world.key},
        params={"botId": world.bot_id},
    )


PATHS: dict[str, Call] = {
    "externalChat": external_chat,
    "externalChat stream": external_chat_stream,
    "chat completions": completion,
    "chat completions chatId first turn": completion_first_turn,
    "chat completions chatId follow-up": completion_follow_up,
    "models": models,
    "workflow run": workflow_run,
    "history list": history_list,
}


@pytest.fixture
def world(bot, api_key, make_workflow) -> World:
    workflow = make_workflow(echo_definition())
    return World(key=api_key, bot_id=bot.id, bot_name=bot.name, workflow_id=workflow.id)


@pytest.fixture
def caches() -> Iterator[Callable[[float], None]]:
    """`set_ttl(seconds)` for the key, bot and workflow caches (emptied each time)."""
    saved = [cache.ttl for cache in CACHES]

    def set_ttl(seconds: float) -> None:
        for cache in CACHES:
            cache.ttl = seconds
            cache.invalidate()

    yield set_ttl
    for cache, ttl in zip(CACHES, saved, strict=True):
        cache.ttl = ttl
        cache.invalidate()


async def served(client: httpx.AsyncClient, world: World, call: Call) -> httpx.Response:
    """One call, and the history it causes written."""
    world.calls += 1
    response = await call(client, world)
    assert response.status_code == 200, response.text[:300]
    await history_writer().flush()
    await run_writer().flush()
    return response


async def measured(client: httpx.AsyncClient, world: World, call: Call) -> QueryLog:
    with counting_queries() as log:
        await served(client, world, call)
    return log


def key_marked_used() -> bool:
    return ApiKey.objects.filter(last_used_at__isnull=False).exists()


async def key_used_written(seconds: float = 2.0) -> bool:
    """Whether the key's `last_used_at` (written in the background) appears within `seconds`."""
    for _ in range(int(seconds / 0.01)):
        if await database_sync_to_async(key_marked_used)():
            return True
        await asyncio.sleep(0.01)
    return False


async def warm_up(client: httpx.AsyncClient, world: World, call: Call) -> None:
    """The key's first call (on a consumer: see `test_the_first_call_of_a_key_marks_it_used`)
    writes its `last_used_at` in the background: wait for it, so that no measurement includes
    it. Then one call of the path itself (connections, upstream client)."""
    await served(client, world, models)
    assert await key_used_written(), "the key's last_used_at was never written"
    await served(client, world, call)


def baselines() -> dict[str, int]:
    return json.loads(BASELINES_FILE.read_text())


def check(name: str, log: QueryLog, found: dict[str, int]) -> None:
    found[name] = log.count
    if UPDATE:
        return
    baseline = baselines().get(name)
    listing = "\n".join(f"  [{thread}] {sql}" for thread, sql in log.queries)
    assert baseline is not None, f"no baseline for {name!r} in {BASELINES_FILE.name}"
    assert log.count <= baseline, (
        f"{name}: {log.count} queries, baseline {baseline}. The queries:\n{listing}"
    )
    if log.count < baseline:
        warnings.warn(
            f"{name}: {log.count} queries, fewer than the baseline {baseline}: update "
            f"{BASELINES_FILE.name} with AIFLOWY_UPDATE_QUERY_COUNTS=1 .venv/bin/python -m "
            "pytest tests/contract/test_query_counts.py, and commit it.",
            stacklevel=2,
        )


@contextlib.asynccontextmanager
async def in_process_client() -> AsyncIterator[httpx.AsyncClient]:
    """A client of the ASGI application in this process (this event loop's upstream clients
    closed afterwards)."""
    transport = httpx.ASGITransport(app=application)
    async with (
        upstream_clients_closed(),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


@pytest.fixture(scope="module")
def measured_counts() -> Iterator[dict[str, int]]:
    """What this run measured; written to the baselines file when updating."""
    found: dict[str, int] = {}
    yield found
    if UPDATE and found:
        merged = {**baselines(), **found} if BASELINES_FILE.exists() else found
        BASELINES_FILE.write_text(json.dumps(dict(sorted(merged.items())), indent=2) + "\n")


@pytest.mark.asyncio
@pytest.mark.parametrize("name", list(PATHS))
async def test_query_count_within_baseline(world, caches, measured_counts, name: str):
    call = PATHS[name]
    async with in_process_client() as client:
        caches(0.0)
        await warm_up(client, world, call)
        cold = await measured(client, world, call)
        caches(60.0)
        await served(client, world, call)  # fills the caches
        warm = await measured(client, world, call)
    check(f"{name}, caches cold", cold, measured_counts)
    check(name, warm, measured_counts)


@contextlib.contextmanager
def async_unsafe_allowed() -> Iterator[None]:
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


@pytest.mark.asyncio
async def test_the_counter_sees_the_queries_of_the_async_adapters(world, caches):
    """The consumers' queries run in `database_sync_to_async`'s thread: the counter sees them
    there (the key and bot loads of a cold call, at least), the test thread's
    `CaptureQueriesContext` does not."""
    async with in_process_client() as client:
        caches(0.0)
        captured = CaptureQueriesContext(connection)
        with async_unsafe_allowed():  # entering and leaving touch this thread's connection
            captured.__enter__()
        try:
            with counting_queries() as log:
                await served(client, world, external_chat)
        finally:
            with async_unsafe_allowed():
                captured.__exit__(None, None, None)
    statements = log.statements
    assert any('FROM "apikeys_apikey"' in sql for sql in statements), statements
    assert any('FROM "bots_bot"' in sql for sql in statements), statements
    assert any('INSERT INTO "chat_message"' in sql for sql in statements), statements
    test_thread = threading.current_thread().name
    assert {thread for thread, _sql in log.queries} - {test_thread}
    assert len(captured.captured_queries) < log.count


@pytest.mark.asyncio
@pytest.mark.parametrize("name", list(PATHS))
async def test_the_first_call_of_a_key_marks_it_used(world, name: str):
    """Every path writes `last_used_at` on a key's first call (at most once a minute per key
    and process): the counts above leave that write out on this premise, and the admin shows
    it as the key's last use."""
    async with in_process_client() as client:
        await served(client, world, PATHS[name])
        assert await key_used_written(), f"{name}: the key's last_used_at was not written"
