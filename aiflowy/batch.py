"""One batch writer for history (chat exchanges, workflow runs): records are queued without
blocking a response and written by one writer task per event loop, many per transaction.

Why batch: a database write per answer competed with the next response for the GIL and cost
~4.5 ms of latency at one caller; gathering what arrives within `coalesce_seconds` into one
transaction (one thread hop) costs a fraction of that, and less per record as load grows.

Three ways in:
- `add(record)`: queue it; the caller does not wait (records nobody reads back at once).
- `await write(record)`: queue it and return once it is stored (or failed and was logged):
  for records that must be in the database before the caller's answer is final (a `chatId`
  answer that the next turn, on any process, reads back). It joins the batch being gathered,
  and skips the wait for more.
- `await flush()`: write what is queued now and return; records queued later are not waited
  for (under steady traffic the queue is never empty).

A batch that fails is retried record by record, so one bad record (a NUL byte PostgreSQL
refuses, a row whose bot was deleted) never loses the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from channels.db import database_sync_to_async

logger = logging.getLogger(__name__)

T = TypeVar("T")


class BatchWriter(Generic[T]):
    def __init__(
        self,
        store: Callable[[list[T]], None],
        *,
        name: str,
        coalesce_seconds: float = 0.02,
        max_batch: int = 500,
    ) -> None:
        """`store(batch)` writes a batch in one transaction (synchronous; run in a thread)."""
        self.store = store
        self.name = name
        self.coalesce_seconds = coalesce_seconds
        self.max_batch = max_batch
        self.queue: asyncio.Queue[tuple[T, asyncio.Future | None]] = asyncio.Queue()
        self.writer: asyncio.Task | None = None
        self.hurry = asyncio.Event()
        # Records queued and written so far (in queue order, by one writer), so a flush waits
        # for what was queued before it and not for later traffic.
        self.queued = 0
        self.written = 0
        self.flush_waiters: list[tuple[int, asyncio.Future]] = []

    def add(self, record: T) -> None:
        """Queue `record`; never blocks, never raises for database trouble."""
        self._enqueue(record, None)

    async def write(self, record: T) -> None:
        """Queue `record` and wait until it is stored (or failed and was logged)."""
        done = asyncio.get_running_loop().create_future()
        self._enqueue(record, done)
        self.hurry.set()
        await asyncio.shield(done)

    async def flush(self) -> None:
        """Wait until every record queued so far is written (or failed and was logged)."""
        target = self.queued
        if self.written >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        self.flush_waiters.append((target, waiter))
        self.hurry.set()
        await waiter

    def _enqueue(self, record: T, done: asyncio.Future | None) -> None:
        self.queue.put_nowait((record, done))
        self.queued += 1
        if self.writer is None or self.writer.done():
            self.writer = asyncio.get_running_loop().create_task(
                self._write_forever(), name=f"{self.name} writer"
            )

    async def _write_forever(self) -> None:
        while True:
            batch = [await self.queue.get()]
            if not self.hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.hurry.wait(), self.coalesce_seconds)
            self.hurry.clear()
            while not self.queue.empty() and len(batch) < self.max_batch:
                batch.append(self.queue.get_nowait())
            try:
                await self._store([record for record, _done in batch])
            finally:
                for _record, done in batch:
                    if done is not None and not done.done():
                        done.set_result(None)
                self._written(len(batch))

    async def _store(self, records: list[T]) -> None:
        try:
            await database_sync_to_async(self.store)(records)
            return
        except Exception:
            if len(records) == 1:
                logger.exception("Could not write a %s record", self.name)
                return
            logger.warning(
                "Could not write %d %s records at once; retrying one by one",
                len(records),
                self.name,
            )
        for record in records:
            try:
                await database_sync_to_async(self.store)([record])
            except Exception:
                logger.exception("Could not write a %s record", self.name)

    def _written(self, count: int) -> None:
        self.written += count
        waiting = []
        for target, waiter in self.flush_waiters:
            if waiter.done():
                continue
            if self.written >= target:
                waiter.set_result(None)
            else:
                waiting.append((target, waiter))
        self.flush_waiters = waiting


class PerLoop(Generic[T]):
    """One `BatchWriter` per event loop (its queue and task belong to that loop): the server's
    loop, a worker's, or a test's."""

    def __init__(self, factory: Callable[[], BatchWriter[T]]) -> None:
        self.factory = factory
        self.writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, BatchWriter[T]] = (
            weakref.WeakKeyDictionary()
        )
        _every_per_loop.add(self)

    def __call__(self) -> BatchWriter[T]:
        loop = asyncio.get_running_loop()
        writer = self.writers.get(loop)
        if writer is None:
            writer = self.writers[loop] = self.factory()
        return writer


_every_per_loop: weakref.WeakSet[PerLoop] = weakref.WeakSet()


async def flush_all() -> None:
    """Write what every writer of this event loop has queued (at shutdown)."""
    loop = asyncio.get_running_loop()
    for per_loop in list(_every_per_loop):
        writer = per_loop.writers.get(loop)
        if writer is not None:
            await writer.flush()
