"""The one batch writer behind chat and workflow history (`aiflowy/batch.py`): a failing
record never loses the others, `write()` returns once its record is stored, and `flush()`
waits for what was queued before it, not for a queue that keeps filling under load."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest
from channels.db import database_sync_to_async

from aiflowy.batch import BatchWriter
from chat.models import Message
from chat.recorder import ExchangeRecord, history_write

# The writer runs stores in Django's database thread (which closes stale connections).
pytestmark = pytest.mark.django_db(transaction=True)


class Store:
    """A store that keeps what it was given and refuses records named "bad"."""

    def __init__(self) -> None:
        self.stored: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, batch: list[str]) -> None:
        if "bad" in batch:
            raise ValueError("refused")
        with self.lock:
            self.stored += batch


@pytest.mark.asyncio
async def test_one_failing_record_does_not_lose_the_others_of_its_batch():
    store = Store()
    writer = BatchWriter(store, name="test", coalesce_seconds=0.05)
    for record in ("a", "bad", "b", "c"):
        writer.add(record)
    await writer.flush()
    assert store.stored == ["a", "b", "c"]
    writer.writer.cancel()


@pytest.mark.asyncio
async def test_write_returns_once_the_record_is_stored_without_waiting_for_the_window():
    store = Store()
    writer = BatchWriter(store, name="test", coalesce_seconds=60)
    await asyncio.wait_for(writer.write("now"), timeout=10)
    assert store.stored == ["now"]
    writer.writer.cancel()


@pytest.mark.asyncio
async def test_flush_returns_once_earlier_records_are_written_while_more_keep_coming():
    store = Store()
    writer = BatchWriter(store, name="test", coalesce_seconds=0.01, max_batch=2)
    writer.add("before the flush")
    flushing = asyncio.ensure_future(writer.flush())

    async def keep_adding() -> None:
        while not flushing.done():
            writer.add("later")
            await asyncio.sleep(0.001)

    # The guard only stops a hang; a flush that waited for the later ones would never end.
    await asyncio.wait_for(asyncio.gather(flushing, keep_adding()), timeout=10)
    assert store.stored[0] == "before the flush"
    writer.writer.cancel()


def _exchange(bot_id: int, question: str) -> ExchangeRecord:
    now = datetime.now(UTC)
    return ExchangeRecord(
        bot_id=bot_id,
        api_key_id=None,
        source="openai",
        question=question,
        answer=f"answer to {question}",
        status="complete",
        started_at=now,
        finished_at=now,
    )


@pytest.mark.asyncio
async def test_chat_history_keeps_the_good_exchanges_of_a_batch_with_a_bad_one(bot):
    writer = BatchWriter(history_write, name="chat history", coalesce_seconds=0.05)
    writer.add(_exchange(bot.id, "first"))
    writer.add(_exchange(bot.id + 1000, "its bot does not exist"))
    writer.add(_exchange(bot.id, "third"))
    await writer.flush()
    questions = await database_sync_to_async(
        lambda: sorted(Message.objects.filter(role="user").values_list("content", flat=True))
    )()
    assert questions == ["first", "third"]
    writer.writer.cancel()
