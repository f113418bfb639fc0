"""A bot linked to a knowledge base answers with the quotes in its prompt, on every chat path;
`detail: true` shows the "Dataset Search" entry and the AI Chat entry's `quoteList`; history
stores which items were quoted and the admin shows them."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from aiflowy.llm import upstream_clients_closed
from config.asgi import application
from knowledge.models import BotKnowledgeBase, DataItem
from tests.chat.conftest import stored_answer
from tests.conftest import sse_parsed
from tests.knowledge.conftest import PUSH, call, corpus_items, ok_data

QUESTION = "我想休假，应该怎么提交申请？"
RIGHT_ANSWER = "员工需要在人事系统中提交休假申请，经直属主管审批后生效。年假天数根据工龄计算。"


@pytest.fixture
def linked_bot(http, api_key, kb, make_bot):
    ok_data(call(http, PUSH, api_key, {"kbId": kb.id, "data": corpus_items()}))
    bot = make_bot(name="hr", system_prompt="You answer HR questions.")
    BotKnowledgeBase.objects.create(bot=bot, knowledge_base=kb, search_mode="mixedRecall", limit=3)
    return bot


def _prompt_sent(fake_upstream, question: str) -> list[dict]:
    return next(
        body["messages"]
        for body in reversed(fake_upstream.requests)
        if "messages" in body and body["messages"][-1]["content"] == question
    )


def _assert_quoted(messages: list[dict]) -> None:
    assert messages[0] == {"role": "system", "content": "You answer HR questions."}
    assert messages[1]["role"] == "system"
    assert RIGHT_ANSWER in messages[1]["content"] and "<data>" in messages[1]["content"]


def test_openai_detail_json_reports_dataset_search_and_the_quote_list(
    http, api_key, linked_bot, fake_upstream
):
    response = http.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": "hr", "detail": True, "messages": [{"role": "user", "content": QUESTION}]},
    )
    assert response.status_code == 200, response.text
    _assert_quoted(_prompt_sent(fake_upstream, QUESTION))
    search, chat = response.json()["responseData"]
    assert (search["moduleName"], search["moduleType"]) == ("Dataset Search", "datasetSearchNode")
    assert search["quoteList"][0]["a"] == RIGHT_ANSWER and len(search["quoteList"]) <= 3
    assert chat["moduleName"] == "AI Chat" and chat["quoteList"] == search["quoteList"]
    message = stored_answer(content__startswith="Echo:")
    top = DataItem.objects.get(a=RIGHT_ANSWER)
    assert message.quoted_items[0]["id"] == top.id
    assert message.quoted_items[0]["datasetId"] == top.knowledge_base_id


def test_openai_detail_stream_carries_the_quote_list_in_flow_responses(
    http, api_key, linked_bot, fake_upstream
):
    response = http.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {api_key}"},
        json={
            "model": "hr",
            "stream": True,
            "detail": True,
            "messages": [{"role": "user", "content": QUESTION}],
        },
    )
    records = next(data for name, data in sse_parsed(response.text) if name == "flowResponses")
    assert [r["moduleName"] for r in records] == ["Dataset Search", "AI Chat"]
    assert records[1]["quoteList"][0]["a"] == RIGHT_ANSWER


def test_external_chat_puts_the_quotes_into_the_prompt(http, api_key, linked_bot, fake_upstream):
    response = http.post(
        "/api/v1/aiBot/externalChat",
        headers={"Authorization": api_key},
        json={"botId": linked_bot.id, "messages": [{"role": "user", "content": QUESTION}]},
    )
    assert response.status_code == 200, response.text
    _assert_quoted(_prompt_sent(fake_upstream, QUESTION))


@pytest.mark.asyncio
async def test_the_websocket_puts_the_quotes_into_the_prompt(api_key, linked_bot, fake_upstream):
    socket = WebsocketCommunicator(application, f"/ws/v1/aiBot/chat?api_key={api_key}")
    async with upstream_clients_closed():
        assert (await socket.connect())[0]
        await socket.send_json_to(
            {"botId": linked_bot.id, "messages": [{"role": "user", "content": QUESTION}]}
        )
        while (await socket.receive_json_from(timeout=10))["status"] not in ("END", "ERROR"):
            pass
        await socket.disconnect()
    _assert_quoted(_prompt_sent(fake_upstream, QUESTION))


def test_a_bot_without_knowledge_gets_no_quote_message(http, api_key, bot, fake_upstream):
    http.post(
        "/api/v1/aiBot/externalChat",
        headers={"Authorization": api_key},
        json={"botId": bot.id, "messages": [{"role": "user", "content": "plain question"}]},
    )
    assert [m["role"] for m in _prompt_sent(fake_upstream, "plain question")] == ["system", "user"]


def test_the_admin_history_shows_the_quoted_items(http, api_key, linked_bot, transactional_db):
    http.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": "hr", "messages": [{"role": "user", "content": QUESTION}]},
    )
    message = stored_answer(content__startswith="Echo:")
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    page = client.get(
        f"/admin/chat/conversation/{message.conversation_id}/change/"
    ).content.decode()
    top = DataItem.objects.get(a=RIGHT_ANSWER)
    assert f'href="/admin/knowledge/dataitem/{top.id}/change/"' in page
