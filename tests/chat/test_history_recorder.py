"""The history recorder: `flush()` (used before reading a `chatId`'s history) waits for what
was queued before it, not for a queue that keeps filling under load."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from channels.db import database_sync_to_async

from chat.models import Message
from chat.recorder import ExchangeRecord, HistoryRecorder


def exchange(bot_id: int, question: str) -> ExchangeRecord:
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
async def test_flush_returns_once_earlier_exchanges_are_written_while_more_keep_coming(bot):
    recorder = HistoryRecorder()
    recorder.record(exchange(bot.id, "before the flush"))
    flushing = asyncio.ensure_future(recorder.flush())

    async def keep_recording() -> None:
        while not flushing.done():
            recorder.record(exchange(bot.id, "later"))
            await asyncio.sleep(0.001)

    # The guard only stops a hang; a flush that waited for the later ones would never end.
    await asyncio.wait_for(asyncio.gather(flushing, keep_recording()), timeout=10)
    assert await database_sync_to_async(Message.objects.filter(content="before the flush").exists)()
    await recorder.flush()
    recorder.writer.cancel()


@pytest.mark.asyncio
async def test_flush_with_nothing_queued_returns_at_once(bot):
    await HistoryRecorder().flush()
