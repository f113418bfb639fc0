"""Accounting under load (marked slow; CI runs it): many concurrent conversations with distinct
`chatId`s, from two keys, spread over two server processes, two turns each (the second on the
other process), then every conversation holds exactly its own messages — none lost,
duplicated or crossed between keys — and the same for concurrent workflow runs.

Deselect locally with `-m "not slow"`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from chat.models import Conversation, Message
from tests.conftest import serve_test_database, wait_until
from tests.contract.conftest import echo_definition
from workflows.definitions import workflow_create
from workflows.models import WorkflowRun

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHATS_PER_KEY = 40
RUNS = 40


@pytest.fixture(scope="module")
def second_server_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    yield from serve_test_database(django_db_blocker, log_name="daphne-accounting.log")


async def turn(client: httpx.AsyncClient, key: str, bot: str, chat_id: str, text: str) -> str:
    response = await client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": bot, "chatId": chat_id, "messages": [{"role": "user", "content": text}]},
    )
    assert response.status_code == 200, response.text[:300]
    return response.json()["choices"][0]["message"]["content"]


async def conversation(servers, key: str, bot: str, chat_id: str, index: int) -> None:
    first, second = servers[index % 2], servers[(index + 1) % 2]
    assert await turn(first, key, bot, chat_id, f"{chat_id} q1") == f"Echo: {chat_id} q1"
    assert await turn(second, key, bot, chat_id, f"{chat_id} q2") == f"Echo: {chat_id} q2"


def test_concurrent_conversations_on_two_processes_keep_exactly_their_messages(
    live_server_url, second_server_url, bot, make_key
):
    keys = {name: make_key(name=name) for name in ("key-a", "key-b")}
    chats = [
        (name, f"{name}-{i}-{uuid.uuid4().hex[:6]}") for name in keys for i in range(CHATS_PER_KEY)
    ]

    async def run_all() -> None:
        async with (
            httpx.AsyncClient(base_url=live_server_url, timeout=60) as a,
            httpx.AsyncClient(base_url=second_server_url, timeout=60) as b,
        ):
            await asyncio.gather(
                *(
                    conversation((a, b), keys[name], bot.name, chat_id, i)
                    for i, (name, chat_id) in enumerate(chats)
                )
            )

    asyncio.run(run_all())
    expected_messages = len(chats) * 4
    wait_until(lambda: Message.objects.count() >= expected_messages, timeout=30)
    assert Message.objects.count() == expected_messages
    assert Conversation.objects.count() == len(chats)
    for name, chat_id in chats:
        conversation_row = Conversation.objects.get(external_chat_id=chat_id)
        assert conversation_row.api_key.name == name
        stored = [
            (m.role, m.content, m.status)
            for m in conversation_row.messages.order_by("created_at", "id")
        ]
        assert stored == [
            ("user", f"{chat_id} q1", "complete"),
            ("assistant", f"Echo: {chat_id} q1", "complete"),
            ("user", f"{chat_id} q2", "complete"),
            ("assistant", f"Echo: {chat_id} q2", "complete"),
        ], chat_id


def test_concurrent_workflow_runs_on_two_processes_are_each_recorded_once(
    live_server_url, second_server_url, make_key
):
    workflow = workflow_create(definition=echo_definition(), title="echo under load")
    key = make_key()

    async def run(client: httpx.AsyncClient, text: str) -> tuple[str, str]:
        response = await client.post(
            "/api/v1/workflow/external/run",
            headers={"Authorization": key},
            json={"id": workflow.id, "variables": {"text": text}},
        )
        assert response.status_code == 200, response.text[:300]
        body = response.json()
        assert body["result"] == {"echo": text}
        return body["runId"], text

    async def run_all() -> list[tuple[str, str]]:
        async with (
            httpx.AsyncClient(base_url=live_server_url, timeout=60) as a,
            httpx.AsyncClient(base_url=second_server_url, timeout=60) as b,
        ):
            return await asyncio.gather(*(run((a, b)[i % 2], f"text {i}") for i in range(RUNS)))

    answered = asyncio.run(run_all())
    wait_until(lambda: WorkflowRun.objects.filter(status="succeeded").count() >= RUNS, timeout=30)
    runs = {str(r.run_id): r for r in WorkflowRun.objects.all()}
    assert len(runs) == RUNS
    for run_id, text in answered:
        assert runs[run_id].result == {"echo": text}
