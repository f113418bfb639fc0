"""Storing chat history: one exchange (question and answer, with its measurements) becomes a
conversation row (or joins its `chatId` conversation) and message rows.

Exchanges reach the database through `history_writer()`, the event loop's `BatchWriter`
(`aiflowy/batch.py`): queued without delaying the response, or awaited when the answer must be
stored before it is final (see `chat/services.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction

from aiflowy.batch import BatchWriter, PerLoop
from chat.models import Conversation, Message


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
    # The answer's tool calls, and the tool results the caller sent as this turn's input
    # (`{"tool_call_id", "content"}` each; then `question` is empty).
    tool_calls: list[dict] | None = None
    tool_results: list[dict] = field(default_factory=list)
    # The request's id (X-Request-Id), to find its log lines from a stored exchange.
    request_id: str = ""
    # The knowledge-base items quoted in the prompt: [{"id", "datasetId", "score"}].
    quoted_items: list = field(default_factory=list)


history_writer: PerLoop[ExchangeRecord] = PerLoop(
    lambda: BatchWriter(history_write, name="chat history")
)


def _message_rows(conversation_id: int, exchange: ExchangeRecord) -> list[dict]:
    """The question or the tool results (if any) and the answer, as rows of `chat_message`,
    every row with the same columns in the same order."""
    answer = {
        "conversation_id": conversation_id,
        "external_id": exchange.answer_item_id,
        "role": Message.Role.ASSISTANT,
        "content": exchange.answer,
        "tool_calls": exchange.tool_calls,
        "tool_call_id": "",
        "status": exchange.status,
        "error_text": exchange.error_text,
        "prompt_tokens": exchange.prompt_tokens,
        "completion_tokens": exchange.completion_tokens,
        "first_token_ms": exchange.first_token_ms,
        "total_ms": exchange.total_ms,
        "request_id": exchange.request_id,
        "quoted_items": exchange.quoted_items,
        "created_at": exchange.finished_at,
    }
    if not exchange.question and not exchange.tool_results:
        return [answer]
    said = {
        **answer,
        "external_id": "",
        "role": Message.Role.USER,
        "content": exchange.question,
        "tool_calls": None,
        "status": Message.Status.COMPLETE,
        "error_text": "",
        "prompt_tokens": None,
        "completion_tokens": None,
        "first_token_ms": None,
        "total_ms": None,
        "quoted_items": [],
        "created_at": exchange.started_at,
    }
    if not exchange.tool_results:
        return [said, answer]
    results = [
        {
            **said,
            "role": Message.Role.TOOL,
            "content": result["content"],
            "tool_call_id": result["tool_call_id"],
        }
        for result in exchange.tool_results
    ]
    return [*results, answer]


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
