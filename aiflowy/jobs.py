"""Durable background jobs, by name: Procrastinate on PostgreSQL, in-process on SQLite.

Why Procrastinate: its queue is a PostgreSQL table, so a job is inserted in the same
transaction as the row it works on (a run row and its job commit together, or neither), a
queued job survives any restart of any process, workers send heartbeats (a worker killed with
`kill -9` is noticed, and its jobs are retried, within `AIFLOWY_JOBS_STALLED_SECONDS`), and it
needs no service beyond the database the platform already has. The channel layer it replaces
lost messages older than 60 s and anything sent while Redis was down.

- `durable_job(name)` registers an async function (keyword arguments that are JSON values) as
  a job. Define jobs in an app's `tasks.py`: workers import those modules at start.
- `enqueue(name, **kwargs)` (async) / `enqueue_sync(name, **kwargs)` queue a job. With the
  Procrastinate backend, `enqueue_sync` inside `transaction.atomic()` commits the job with the
  caller's writes; `enqueue(..., with_transaction=fn)` runs `fn` (database writes) and the
  insert in one transaction.
- `exclusive(key)` holds a PostgreSQL advisory lock on a connection of its own for as long as
  a job runs: a job that the stalled-job check retried while its first worker was in fact
  alive does not run twice at once; the lock goes with the connection when a worker dies.
- Embedded backend ("inprocess", the default without PostgreSQL): the same job function runs
  as an asyncio task of the process that queued it. Nothing is durable there: it is for one
  process on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection, transaction

from aiflowy.background import spawn
from aiflowy.llm import upstream_clients_closed

logger = logging.getLogger(__name__)

JobFunction = Callable[..., Awaitable[None]]

PROCRASTINATE = "procrastinate"
IN_PROCESS = "inprocess"

_jobs: dict[str, JobFunction] = {}
_discovered = False
_held_in_process: set[str] = set()


def durable_job(name: str) -> Callable[[JobFunction], JobFunction]:
    """Register `fn` as the job `name` (returns `fn` unchanged).

    A job that fails because the database went away (a restart, a cut connection) is tried
    again, up to 5 times, 2 s apart and more: a job must therefore be safe to start again
    after such an error (as a workflow run is: it is claimed once)."""

    def register(fn: JobFunction) -> JobFunction:
        from django.db import InterfaceError, OperationalError
        from procrastinate import RetryStrategy
        from procrastinate.contrib.django import app

        _jobs[name] = fn
        retry = RetryStrategy(
            max_attempts=5,
            wait=2,
            linear_wait=2,
            retry_exceptions={OperationalError, InterfaceError},
        )
        app.task(name=name, queue=settings.AIFLOWY_JOBS_QUEUE, retry=retry)(fn)
        return fn

    return register


def backend() -> str:
    return settings.AIFLOWY_JOBS_BACKEND


def job_function(name: str) -> JobFunction:
    """The function registered as `name`; imports every app's `tasks` module once."""
    global _discovered
    if not _discovered:
        from django.utils.module_loading import autodiscover_modules

        autodiscover_modules("tasks")
        _discovered = True
    try:
        return _jobs[name]
    except KeyError:
        raise LookupError(f"no durable job is registered as {name!r}") from None


def _defer(name: str, lock: str | None, kwargs: dict[str, Any]) -> int:
    from procrastinate.contrib.django import app

    job_function(name)  # an unknown name fails here, not in a worker later
    return app.configure_task(name, queue=settings.AIFLOWY_JOBS_QUEUE, lock=lock).defer(**kwargs)


async def enqueue(
    name: str,
    *,
    lock: str | None = None,
    with_transaction: Callable[[], None] | None = None,
    **kwargs: Any,
) -> None:
    """Queue the job `name`; `with_transaction` (sync database writes) commits with it."""
    if backend() == PROCRASTINATE:

        def write() -> None:
            with transaction.atomic():
                if with_transaction is not None:
                    with_transaction()
                _defer(name, lock, kwargs)

        await database_sync_to_async(write)()
        return
    fn = job_function(name)
    if with_transaction is not None:
        await database_sync_to_async(transaction.atomic()(with_transaction))()
    spawn(fn(**kwargs), name=f"job-{name}")


def enqueue_sync(name: str, *, lock: str | None = None, **kwargs: Any) -> None:
    """Queue the job `name` from synchronous code (an admin action, a view).

    Inside `transaction.atomic()` the job is part of that transaction (in-process: it starts
    after the commit, on a thread of its own, and not at all on a rollback)."""
    if backend() == PROCRASTINATE:
        _defer(name, lock, kwargs)
        return
    fn = job_function(name)

    async def run_on_own_loop() -> None:
        # The thread's loop ends with the job: its upstream clients go with it.
        async with upstream_clients_closed():
            await fn(**kwargs)

    def start() -> None:
        threading.Thread(target=asyncio.run, args=(run_on_own_loop(),), daemon=True).start()

    transaction.on_commit(start)


def _advisory_key(key: str) -> int:
    """A signed 64-bit lock id for `key` (stable across processes, unlike `hash`)."""
    import hashlib

    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.asynccontextmanager
async def exclusive(key: str) -> AsyncIterator[bool]:
    """Yield True when this process now alone holds `key` (until the block ends), else False.

    On PostgreSQL: a session advisory lock on a connection opened for it, so that a worker
    that dies (even by `kill -9`) releases it with its connection."""
    if connection.vendor != "postgresql":
        if key in _held_in_process:
            yield False
            return
        _held_in_process.add(key)
        try:
            yield True
        finally:
            _held_in_process.discard(key)
        return
    import psycopg
    from procrastinate.contrib.django.utils import connector_params

    params = connector_params(connection.alias)
    params.pop("pool", None)
    async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as lock_conn:
        cursor = await lock_conn.execute("SELECT pg_try_advisory_lock(%s)", [_advisory_key(key)])
        row = await cursor.fetchone()
        yield bool(row and row[0])


async def retry_stalled_jobs(stalled_seconds: float, *, app: Any = None) -> int:
    """Put back in the queue the jobs of workers silent for `stalled_seconds` (killed, hung,
    cut off); returns how many. Every worker calls this now and then."""
    from procrastinate import exceptions

    if app is None:
        from procrastinate.contrib.django import app

    retried = 0
    for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_seconds):
        try:
            await app.job_manager.retry_job(job)
        except exceptions.ConnectorException:
            continue  # another worker retried it first
        logger.warning("Job %s (%s) of a stalled worker was put back in the queue", job.id, job)
        retried += 1
    return retried


async def queue_depth() -> int | None:
    """Jobs waiting (`todo`) in aiflowy's queue, or None without a durable queue."""
    if backend() != PROCRASTINATE:
        return None

    def count() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo' AND queue_name = %s",
                [settings.AIFLOWY_JOBS_QUEUE],
            )
            return cursor.fetchone()[0]

    return await database_sync_to_async(count)()
