"""Writes chat history without holding any response.

Endpoints hand a finished exchange to `history_recorder().record(...)`, which only queues it.
One writer task per event loop drains the queue and writes everything waiting in one database
transaction (one thread hop per batch, not per message). It waits a moment (20 ms) after the
first exchange of a batch so that writes do not compete with every response for the GIL
(measured: a write per answer added ~4.5 ms to each answer's latency); under load, batches
grow and the cost per exchange falls. `flush()` writes at once and waits for what is queued
(used before reading a conversation's history).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass, field
from datetime import datetime

from channels.db import database_sync_to_async
from django.db import connection, transaction

from chat.models import Conversation, Message

logger = logging.getLogger(__name__)

MAX_BATCH = 500
COALESCE_SECONDS = 0.02


@dataclass(slots=True)
class ExchangeRecord:
    """One question and its answer (complete, interrupted or failed), with measurements."""

    bot_id: int
    api_key_id: int | None
    source: str
    question: str
    answer: str
    status: str
    started_at: datetime
    finished_at: datetime
    error_text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    first_token_ms: int | None = None
    total_ms: int | None = None
    external_chat_id: str = ""
    custom_uid: str = ""
    variables: dict = field(default_factory=dict)
    answer_item_id: str = ""


class HistoryRecorder:
    def __init__(self, coalesce_seconds: float = COALESCE_SECONDS) -> None:
        self.queue: asyncio.Queue[ExchangeRecord] = asyncio.Queue()
        self.writer: asyncio.Task | None = None
        self.coalesce_seconds = coalesce_seconds
        self.flush_requested = asyncio.Event()
        # Exchanges queued and written so far (written in queue order, by one writer at a time),
        # so a flush waits for what was queued before it and not for later traffic.
        self.queued = 0
        self.written = 0
        self.flush_waiters: list[tuple[int, asyncio.Future]] = []

    def record(self, exchange: ExchangeRecord) -> None:
        """Queue an exchange for writing; never blocks, never raises for database trouble."""
        self.queue.put_nowait(exchange)
        self.queued += 1
        if self.writer is None or self.writer.done():
            self.writer = asyncio.get_running_loop().create_task(
                self._write_forever(), name="chat-history-writer"
            )

    async def flush(self) -> None:
        """Wait until every exchange queued so far is written (or failed and was logged).
        Exchanges queued after the call are not waited for: under steady traffic the queue is
        never empty, and a `chatId` request must not wait for it to be."""
        target = self.queued
        if self.written >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        self.flush_waiters.append((target, waiter))
        self.flush_requested.set()
        await waiter

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

    async def _write_forever(self) -> None:
        while True:
            batch = [await self.queue.get()]
            if not self.flush_requested.is_set():
                # Gather what arrives in the next moment into the same transaction: one thread
                # hop per batch instead of one per answer, away from the responses being sent.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.flush_requested.wait(), self.coalesce_seconds)
            self.flush_requested.clear()
            while not self.queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self.queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self.queue.task_done()
                self._written(len(batch))

    @staticmethod
    async def _write(batch: list[ExchangeRecord]) -> None:
        """Write the batch in one transaction; if that fails, write its exchanges one by one,
        so one bad exchange (its bot or key deleted meanwhile) does not lose the others."""
        try:
            await database_sync_to_async(history_write)(batch)
            return
        except Exception:
            if len(batch) == 1:
                logger.exception("Could not write a chat exchange of bot %s", batch[0].bot_id)
                return
            logger.warning(
                "Could not write %d chat exchanges at once; retrying one by one", len(batch)
            )
        for exchange in batch:
            try:
                await database_sync_to_async(history_write)([exchange])
            except Exception:
                logger.exception("Could not write a chat exchange of bot %s", exchange.bot_id)


_recorders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HistoryRecorder] = (
    weakref.WeakKeyDictionary()
)


def history_recorder() -> HistoryRecorder:
    """The recorder of the running event loop."""
    loop = asyncio.get_running_loop()
    recorder = _recorders.get(loop)
    if recorder is None:
        recorder = _recorders[loop] = HistoryRecorder()
    return recorder


def _message_rows(conversation_id: int, exchange: ExchangeRecord) -> list[dict]:
    """The question (if any) and the answer, as rows of `chat_message`, every row with the same
    columns in the same order."""
    answer = {
        "conversation_id": conversation_id,
        "external_id": exchange.answer_item_id,
        "role": Message.Role.ASSISTANT,
        "content": exchange.answer,
        "status": exchange.status,
        "error_text": exchange.error_text,
        "prompt_tokens": exchange.prompt_tokens,
        "completion_tokens": exchange.completion_tokens,
        "first_token_ms": exchange.first_token_ms,
        "total_ms": exchange.total_ms,
        "created_at": exchange.finished_at,
    }
    if not exchange.question:
        return [answer]
    question = {
        **answer,
        "external_id": "",
        "role": Message.Role.USER,
        "content": exchange.question,
        "status": Message.Status.COMPLETE,
        "error_text": "",
        "prompt_tokens": None,
        "completion_tokens": None,
        "first_token_ms": None,
        "total_ms": None,
        "created_at": exchange.started_at,
    }
    return [question, answer]


def _conversation_row(exchange: ExchangeRecord) -> dict:
    return {
        "bot_id": exchange.bot_id,
        "api_key_id": exchange.api_key_id,
        "external_chat_id": exchange.external_chat_id,
        "custom_uid": exchange.custom_uid,
        "source": exchange.source,
        "variables": exchange.variables,
        "title": exchange.question[:200],
        "created_at": exchange.started_at,
        "updated_at": exchange.finished_at,
    }


ROWS_PER_STATEMENT = 250


def _insert_rows(model, rows: list[dict], *, return_ids: bool = False) -> list[int]:
    """The multi-row `INSERT … RETURNING id` that `bulk_create` sends, without its per-value
    SQL compilation, which was 96% of the history writer's time (and it holds the GIL that
    the event loop needs). Only datetime and JSON columns need the field's preparation."""
    if not rows:
        return []
    fields = [model._meta.get_field(name) for name in rows[0]]
    prepare = [
        field.get_db_prep_save
        if field.get_internal_type() in ("DateTimeField", "JSONField")
        else None
        for field in fields
    ]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
    ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            params = [
                prep(value, connection) if prep is not None and value is not None else value
                for row in chunk
                for prep, value in zip(prepare, row.values(), strict=True)
            ]
            sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES " + ", ".join(
                [placeholder] * len(chunk)
            )
            if return_ids:
                sql += f" RETURNING {quote(model._meta.pk.column)}"
            cursor.execute(sql, params)
            if return_ids:
                ids += [row[0] for row in cursor.fetchall()]
    return ids


@transaction.atomic
def history_write(batch: list[ExchangeRecord]) -> None:
    """Store a batch: stateless exchanges get a conversation each (two inserts for the whole
    batch); exchanges with a chat id join that key's conversation for the bot."""
    stateless = [e for e in batch if not e.external_chat_id]
    conversation_ids = _insert_rows(
        Conversation, [_conversation_row(e) for e in stateless], return_ids=True
    )
    message_rows: list[dict] = []
    for conversation_id, exchange in zip(conversation_ids, stateless, strict=True):
        message_rows += _message_rows(conversation_id, exchange)
    for exchange in (e for e in batch if e.external_chat_id):
        row = _conversation_row(exchange)
        conversation, created = Conversation.objects.get_or_create(
            bot_id=exchange.bot_id,
            api_key_id=exchange.api_key_id,
            external_chat_id=exchange.external_chat_id,
            defaults={k: v for k, v in row.items() if k not in ("bot_id", "api_key_id")},
        )
        if not created:
            conversation.updated_at = exchange.finished_at
            conversation.variables = {**conversation.variables, **exchange.variables}
            if exchange.custom_uid:
                conversation.custom_uid = exchange.custom_uid
            conversation.save(update_fields=["updated_at", "variables", "custom_uid"])
        message_rows += _message_rows(conversation.pk, exchange)
    _insert_rows(Message, message_rows)
